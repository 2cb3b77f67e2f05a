//! The one place where errors become HTTP statuses.
//!
//! Spec: path-gateway.md § "Response Status Codes", trustless-gateway.md § "Response Status
//! Codes". Bodies are short fixed texts: internal error text is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hydrant_unixfs::DagError;

use crate::request::RequestError;
use hydrant_blocks::BlockstoreError;

/// The one `Retry-After` policy of both HTTP listeners: how many seconds a client is asked to
/// wait after `status`, or `None` when retrying later is no answer (everything but 429 and
/// 502 to 504).
///
/// - 429 and 503, load shed by us (a full memory budget, a client over its share): capacity
///   frees within a request's time, so 1 s.
/// - 502 and 504, storage unreachable or too slow: an outage is not over in a second, and
///   clients retrying at once only add to it, so 30 s.
///
/// Spec: RFC 9110 § 10.2.3 (`Retry-After` on 503 and 3xx; 429 in RFC 6585 § 4).
pub fn retry_after(status: StatusCode) -> Option<u64> {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Some(1),
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Some(30),
        _ => None,
    }
}

/// Why a request failed before its response started.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request itself is invalid or asks for something this gateway does not produce.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The root block is not in this gateway's storage (404; 412 under `only-if-cached`).
    #[error("root block not found")]
    RootNotFound {
        /// The request had `Cache-Control: only-if-cached`.
        only_if_cached: bool,
    },
    /// The content path names something that does not exist, or goes below a file, or a
    /// block on the path is missing (404).
    #[error("content path not found")]
    PathNotFound,
    /// The content path ends inside a DAG-CBOR/DAG-JSON block at a value that is not a link
    /// (path-gateway.md § "Traversing through DAG-JSON and DAG-CBOR": 501), or goes through a
    /// block whose codec cannot be pathed (501).
    #[error("content path cannot be resolved through this block")]
    PathUnsupported,
    /// The content path needs more blocks than the configured bound (400).
    #[error("content path too deep")]
    PathTooDeep,
    /// A block on the content path could not be decoded: 400 when it is an identity CID (the
    /// client wrote its bytes into the request), else 500 (a stored block).
    #[error("cannot traverse content path: {0}")]
    Traversal(#[from] DagError),
    /// The block store failed: 502 when it could not be reached (index or object store,
    /// [`BlockstoreError::is_unavailable`]), 500 when its data is wrong.
    #[error(transparent)]
    Store(#[from] BlockstoreError),
    /// `/ipns/` is not served by this gateway (501).
    #[error("IPNS is not supported")]
    IpnsUnsupported,
}

impl GatewayError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Request(RequestError::NotAcceptable) => StatusCode::NOT_ACCEPTABLE,
            Self::Request(_) | Self::PathTooDeep => StatusCode::BAD_REQUEST,
            Self::RootNotFound {
                only_if_cached: true,
            } => StatusCode::PRECONDITION_FAILED,
            Self::RootNotFound { .. } | Self::PathNotFound => StatusCode::NOT_FOUND,
            Self::PathUnsupported | Self::IpnsUnsupported => StatusCode::NOT_IMPLEMENTED,
            Self::Traversal(e) if e.undecodable_block().is_some_and(is_identity) => {
                StatusCode::BAD_REQUEST
            }
            Self::Traversal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Store(e) if e.is_unavailable() => StatusCode::BAD_GATEWAY,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short text sent as the body: fixed strings only, nothing from storage.
    fn public_text(&self) -> &'static str {
        match self {
            Self::Request(RequestError::InvalidCid) => "invalid CID\n",
            Self::Request(RequestError::InvalidPath(_)) => "invalid content path\n",
            Self::Request(RequestError::NoFormat) => {
                "trustless gateway: request application/vnd.ipld.raw or application/vnd.ipld.car \
                 (Accept header or ?format=raw|car)\n"
            }
            Self::Request(RequestError::NotAcceptable) => {
                "only application/vnd.ipld.raw and application/vnd.ipld.car (version=1, \
                 order=dfs|unk, dups=y|n) are served; fetch ?format=raw and decode client-side\n"
            }
            Self::Request(RequestError::InvalidParam(_)) => "invalid query parameter\n",
            Self::Request(RequestError::RawWithPath) => {
                "raw block requests take no content path: use /ipfs/{cid}?format=raw\n"
            }
            Self::RootNotFound { .. } => "block not found\n",
            Self::PathNotFound => "content path not found\n",
            Self::PathUnsupported => {
                "content path cannot be resolved: it ends inside a block, not at a link, or \
                 crosses a block whose codec has no pathing\n"
            }
            Self::PathTooDeep => "content path too deep\n",
            Self::Store(e) if e.is_unavailable() => {
                "storage temporarily unavailable, retry later\n"
            }
            Self::Traversal(e) if e.undecodable_block().is_some_and(is_identity) => {
                "an identity CID on the content path holds bytes that are not valid for its codec\n"
            }
            Self::Traversal(_) | Self::Store(_) => "internal server error\n",
            Self::IpnsUnsupported => "IPNS is not supported by this gateway\n",
        }
    }
}

/// Whether `cid` is an identity CID (its bytes are in the CID, i.e. came from the client).
fn is_identity(cid: &cid::Cid) -> bool {
    cid.hash().code() == hydrant_blocks::codes::IDENTITY
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "gateway request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "gateway request refused");
        }
        let text = match &self {
            // The parameter name is ours, not the client's.
            Self::Request(RequestError::InvalidParam(name)) => {
                format!("invalid value for query parameter {name}\n")
            }
            _ => self.public_text().to_string(),
        };
        let mut response = (status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = retry_after(status) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cid::Cid;

    #[test]
    fn one_retry_after_policy() {
        let secs = |code: u16| retry_after(StatusCode::from_u16(code).unwrap());
        assert_eq!((secs(429), secs(503)), (Some(1), Some(1)), "shed load");
        assert_eq!(
            (secs(502), secs(504)),
            (Some(30), Some(30)),
            "storage outage"
        );
        for code in [200, 400, 404, 500, 501] {
            assert_eq!(secs(code), None, "{code}");
        }
    }

    #[test]
    fn statuses_and_no_leaks() {
        let cid = Cid::default();
        let secret = "disk /dev/sda3 on fire".to_string();
        let cases = [
            (GatewayError::Request(RequestError::InvalidCid), 400),
            (GatewayError::Request(RequestError::NotAcceptable), 406),
            (
                GatewayError::RootNotFound {
                    only_if_cached: false,
                },
                404,
            ),
            (
                GatewayError::RootNotFound {
                    only_if_cached: true,
                },
                412,
            ),
            (GatewayError::PathNotFound, 404),
            (GatewayError::PathUnsupported, 501),
            (
                GatewayError::Store(BlockstoreError::Storage {
                    key: secret.clone(),
                    start: 0,
                    end: 1,
                    detail: secret.clone(),
                }),
                502,
            ),
            (
                GatewayError::Store(BlockstoreError::Index {
                    cid,
                    detail: secret.clone(),
                }),
                502,
            ),
            (
                GatewayError::Store(BlockstoreError::Corrupt {
                    cid,
                    key: secret.clone(),
                    offset: 0,
                }),
                500,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.status().as_u16(), code, "{err}");
            let text = err.public_text();
            assert!(!text.contains("sda3"));
            let resp = err.into_response();
            assert_eq!(
                resp.headers().contains_key(header::RETRY_AFTER),
                matches!(code, 502..=504)
            );
        }
    }
}
