//! The one place where errors become HTTP statuses.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "Response Status Codes" of the providers and
//! peers endpoints (422 for a request that does not conform to schema or semantic
//! constraints), § "IPNS API" (400 for an invalid record or name, 406 for a missing or
//! unsupported media type, 404 for no record), § "DHT Routing API" (404 when no peer is
//! found, 422 for a bad key) and § "Error Codes" (400 for an unknown path, 501 for an
//! unsupported method/path, 429 with `Retry-After`). 503 and 504 are not listed by the spec; they are
//! the plain HTTP meaning (RFC 9110 § 15.6.4, § 15.6.5) of "overloaded, retry later" and "the
//! routing system did not answer in time", which the spec's codes do not cover.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::filter::FilterError;
use crate::ids::IdError;

/// Why a [`ContentRouter`](crate::ContentRouter) lookup failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// The router is shedding load: answered 503 with `Retry-After` (whole seconds, at
    /// least 1).
    #[error("router overloaded, retry after {retry_after:?}")]
    Overloaded {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The underlying routing system did not answer in time: answered 504.
    #[error("routing lookup timed out")]
    Timeout,
    /// This router does not implement the operation (IPNS, DHT closest peers): answered
    /// 501 (§ "Error Codes").
    #[error("not supported by this router")]
    NotSupported,
    /// Anything else: answered 500. The text is logged, never sent to the client.
    #[error("routing lookup failed: {0}")]
    Internal(String),
}

/// Why a request to the routing API was not answered with records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The `{cid}` path parameter is not a CID (422).
    #[error("invalid CID: {0}")]
    InvalidCid(IdError),
    /// The `{peer-id}` path parameter is not a peer ID (422).
    #[error("invalid peer ID: {0}")]
    InvalidPeerId(IdError),
    /// The `{key}` of a closest-peers request is neither a CID nor a peer ID (422).
    #[error("invalid key: {0}")]
    InvalidKey(IdError),
    /// No peer close to the key is known (404, § "DHT Routing API": "must be returned if
    /// no matching records are found").
    #[error("no peers found")]
    NoPeersFound,
    /// The `{name}` of an IPNS request is not a peer ID (400).
    #[error("invalid IPNS name: {0}")]
    InvalidIpnsName(IdError),
    /// The IPNS record of a PUT failed verification for its name, or is over 10 KiB (400).
    /// The text says why.
    #[error("invalid IPNS record: {0}")]
    InvalidIpnsRecord(String),
    /// The record held for the name is better (higher sequence, or equal sequence and
    /// later validity) than the one PUT (400: § "IPNS API" has no other refusal).
    #[error(
        "the record held for this name is newer (higher sequence or later validity); publish with a higher sequence"
    )]
    IpnsRecordOutdated,
    /// No IPNS record is held for the name (404).
    #[error("no IPNS record for this name")]
    IpnsNotFound,
    /// The request did not accept, or did not send, `application/vnd.ipfs.ipns-record`
    /// (406). The text names the header to fix.
    #[error("{0}")]
    NotAcceptable(&'static str),
    /// A `filter-addrs` or `filter-protocols` value breaks a bound (422).
    #[error("invalid filter: {0}")]
    InvalidFilter(#[from] FilterError),
    /// The query string is longer than the configured bound (422).
    #[error("query string is {0} bytes long, the limit is {1}")]
    QueryTooLong(usize, usize),
    /// A path under `/routing/v1/` that this API does not define (400).
    #[error(
        "unknown path: the routing v1 API has /routing/v1/providers/{{cid}} and /routing/v1/peers/{{peer-id}}"
    )]
    UnknownPath,
    /// A path this API defines but this server does not implement (IPNS, DHT closest
    /// peers), or a method other than GET/HEAD/OPTIONS (501).
    #[error("{0} is not implemented by this server")]
    NotImplemented(&'static str),
    /// The lookup failed (500, 503 or 504, see [`RouterError`]).
    #[error(transparent)]
    Router(#[from] RouterError),
}

impl RoutingError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidCid(_)
            | Self::InvalidPeerId(_)
            | Self::InvalidFilter(_)
            | Self::InvalidKey(_)
            | Self::QueryTooLong(..) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnknownPath
            | Self::InvalidIpnsName(_)
            | Self::InvalidIpnsRecord(_)
            | Self::IpnsRecordOutdated => StatusCode::BAD_REQUEST,
            Self::NoPeersFound | Self::IpnsNotFound => StatusCode::NOT_FOUND,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::NotImplemented(_) | Self::Router(RouterError::NotSupported) => {
                StatusCode::NOT_IMPLEMENTED
            }
            Self::Router(RouterError::Overloaded { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Router(RouterError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Router(RouterError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for RoutingError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Router(RouterError::Internal(detail)) => {
                tracing::warn!(%detail, "routing lookup failed");
                "internal error during routing lookup\n".to_string()
            }
            other => format!("{other}\n"),
        };
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status.is_server_error() {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if status == StatusCode::NOT_FOUND {
            // Absence is a result: cacheable briefly, like an empty providers answer.
            let cache = format!(
                "public, max-age={}",
                crate::DEFAULT_NOT_FOUND_MAX_AGE.as_secs()
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_str(&cache).expect("ASCII header value"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        if let Self::Router(RouterError::Overloaded { retry_after }) = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
