//! The one place where errors become HTTP statuses.
//!
//! Spec: path-gateway.md § "Response Status Codes", trustless-gateway.md § "Response Status
//! Codes". Bodies are short fixed texts: internal error text is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hydrant_unixfs::DagError;
use hydrant_unixfs::exporter::ExportError;

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
    /// The requested format does not match the codec of the terminus and would need a
    /// conversion (e.g. `?format=dag-json` of a dag-pb or dag-cbor block, `?format=tar` of
    /// something that is not UnixFS): 406 (path-gateway.md § "`406` Not Acceptable",
    /// IPIP-0524: no codec conversions).
    #[error("the requested format does not match the content's codec")]
    CodecMismatch,
    /// The terminus has no deserialized form this gateway produces (a codec other than
    /// raw, dag-pb, dag-json, dag-cbor, json, cbor; a dag-pb node without UnixFS data; a
    /// UnixFS metadata node): 406, with a hint to ask for `?format=raw` or `?format=car`.
    #[error("the content has no deserialized form")]
    NotDeserializable,
    /// `Range` names no byte of the file (416, with `Content-Range: bytes */{size}`, RFC 9110
    /// § 15.5.17, path-gateway.md § "`Range` (request header)").
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The size of the file or block, bytes.
        size: u64,
    },
    /// A directory holds more entries than the listing cap (501: listing it is not
    /// implemented; the entries are available with `?format=car` or `?format=raw`).
    #[error("directory has more than {limit} entries")]
    ListingTooLarge {
        /// The cap on entries of one listing.
        limit: usize,
    },
    /// Reading a UnixFS file, directory or tree failed before the response started: 404 for
    /// a missing block (path-gateway.md § "`404` Not Found": "missing DAG node"), 400 for
    /// entry names climbing out of the tree (`..`, `/`), 500 for a block that does not
    /// decode or sizes that disagree (the stored DAG is invalid).
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl GatewayError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Request(RequestError::NotAcceptable)
            | Self::CodecMismatch
            | Self::NotDeserializable => StatusCode::NOT_ACCEPTABLE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::ListingTooLarge { .. } => StatusCode::NOT_IMPLEMENTED,
            Self::Export(ExportError::MissingBlock { .. }) => StatusCode::NOT_FOUND,
            Self::Export(ExportError::InvalidName { .. } | ExportError::InvalidPath { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Self::Export(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            Self::Request(RequestError::NotAcceptable) => {
                "only CAR version=1, order=dfs|unk, dups=y|n is served; fetch ?format=car or \
                 ?format=raw\n"
            }
            Self::CodecMismatch => {
                "the requested format does not match the content's codec and codecs are not \
                 converted; fetch ?format=raw and convert client-side\n"
            }
            Self::NotDeserializable => {
                "this content has no deserialized form here; fetch ?format=raw or ?format=car\n"
            }
            Self::RangeNotSatisfiable { .. } => "range not satisfiable\n",
            Self::ListingTooLarge { .. } => {
                "directory too large to list; fetch it with ?format=car or ?format=raw\n"
            }
            Self::Export(ExportError::MissingBlock { .. }) => "a block of the content is missing\n",
            Self::Export(ExportError::InvalidName { .. } | ExportError::InvalidPath { .. }) => {
                "the content holds an entry name that leaves its directory\n"
            }
            Self::Export(_) => "the content's DAG is invalid\n",
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
        if let Self::RangeNotSatisfiable { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            headers.insert(header::CONTENT_RANGE, v);
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
            (GatewayError::CodecMismatch, 406),
            (GatewayError::NotDeserializable, 406),
            (GatewayError::RangeNotSatisfiable { size: 3 }, 416),
            (GatewayError::ListingTooLarge { limit: 1 }, 501),
            (
                GatewayError::Export(ExportError::MissingBlock {
                    cid,
                    path: secret.clone(),
                }),
                404,
            ),
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
