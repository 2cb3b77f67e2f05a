//! A small client for another server's Delegated Routing V1 API.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "Content Routing API", § "Peer Routing API"
//! (404 MUST be read as 200 with no results) and § "Streaming" (ask for
//! `application/x-ndjson`, accept `application/json` too, and look at `Content-Type` before
//! parsing).

use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use cid::Cid;
use futures::StreamExt;
use libp2p::PeerId;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;

use crate::accept::{MEDIA_JSON, MEDIA_NDJSON};
use crate::record::Record;
use crate::{ContentRouter, RouterError};

/// Bounds of a [`RoutingClient`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Most records returned by one call (default 1000); an NDJSON stream is dropped once
    /// this many records are read.
    pub max_records: usize,
    /// Largest `application/json` body read, in bytes (default 4 MiB).
    pub max_json_bytes: usize,
    /// Longest NDJSON line, in bytes (default 64 KiB).
    pub max_line_bytes: usize,
    /// Whole-request timeout, body included (default 30 s).
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_records: 1000,
            max_json_bytes: 4 << 20,
            max_line_bytes: 64 << 10,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why a [`RoutingClient`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connection, TLS or timeout failure (see [`reqwest::Error::is_timeout`]).
    #[error("routing request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered 429 or 503; `retry_after` is its `Retry-After` in seconds, if
    /// given as a number.
    #[error("routing server is busy ({status}), retry after {retry_after:?}")]
    Busy {
        /// 429 or 503.
        status: u16,
        /// `Retry-After`, when present as delta-seconds.
        retry_after: Option<Duration>,
    },
    /// Any other status but 200 and 404.
    #[error("routing server answered {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The first 512 bytes of the body, lossily decoded.
        body: String,
    },
    /// A 200 whose `Content-Type` is neither JSON nor NDJSON.
    #[error("unexpected Content-Type {0:?}")]
    ContentType(String),
    /// A JSON body over [`ClientConfig::max_json_bytes`] or an NDJSON line over
    /// [`ClientConfig::max_line_bytes`].
    #[error("response exceeds the {0}-byte bound")]
    TooLarge(usize),
    /// The body is not the JSON the spec describes.
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// Queries `{base}/routing/v1/providers/{cid}` and `{base}/routing/v1/peers/{peer-id}` on
/// another server. Records that do not parse (e.g. a `peer` record with a bad `ID`) are
/// skipped; records of unknown schemas are returned as [`Record::Unknown`].
#[derive(Clone, Debug)]
pub struct RoutingClient {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

impl RoutingClient {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`; a trailing `/`
    /// is ignored).
    ///
    /// Errors: [`ClientError::Http`] if the HTTP client cannot be built.
    pub fn new(base_url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(RoutingClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            config,
        })
    }

    /// Provider records for `cid`, at most `min(limit, max_records)`. The CID is sent as
    /// CIDv1 (base32), as the spec prefers for cache hits.
    ///
    /// Errors: [`ClientError`]; a 404 is `Ok(vec![])`.
    pub async fn find_providers(
        &self,
        cid: &Cid,
        limit: usize,
    ) -> Result<Vec<Record>, ClientError> {
        let v1 = Cid::new_v1(cid.codec(), *cid.hash());
        let url = format!("{}/routing/v1/providers/{v1}", self.base);
        self.get(&url, "Providers", limit).await
    }

    /// Peer records for `peer` (sent in base58btc), at most `min(limit, max_records)`.
    ///
    /// Errors: [`ClientError`]; a 404 is `Ok(vec![])`.
    pub async fn find_peers(
        &self,
        peer: &PeerId,
        limit: usize,
    ) -> Result<Vec<Record>, ClientError> {
        let url = format!("{}/routing/v1/peers/{}", self.base, peer.to_base58());
        self.get(&url, "Peers", limit).await
    }

    async fn get(&self, url: &str, field: &str, limit: usize) -> Result<Vec<Record>, ClientError> {
        let limit = limit.min(self.config.max_records);
        let resp = self
            .http
            .get(url)
            .header(ACCEPT, format!("{MEDIA_NDJSON}, {MEDIA_JSON}"))
            .send()
            .await?;
        let status = resp.status();
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(Vec::new()),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(ClientError::Busy {
                    status: status.as_u16(),
                    retry_after,
                });
            }
            _ => {
                let body = read_bounded(resp, 512, true).await.unwrap_or_default();
                return Err(ClientError::Status {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
        }
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let essence = ctype.split(';').next().unwrap_or("").trim();
        if limit == 0 {
            return Ok(Vec::new());
        }
        if essence == MEDIA_NDJSON {
            self.read_ndjson(resp, limit).await
        } else if essence == MEDIA_JSON {
            let body = read_bounded(resp, self.config.max_json_bytes, false).await?;
            parse_json_list(&body, field, limit)
        } else {
            Err(ClientError::ContentType(ctype))
        }
    }

    async fn read_ndjson(
        &self,
        resp: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<Record>, ClientError> {
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        let mut stream = resp.bytes_stream();
        loop {
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                if nl > self.config.max_line_bytes {
                    return Err(ClientError::TooLarge(self.config.max_line_bytes));
                }
                let line = buf.split_to(nl + 1);
                if let Some(r) = parse_line(&line[..nl])? {
                    out.push(r);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if buf.len() > self.config.max_line_bytes {
                return Err(ClientError::TooLarge(self.config.max_line_bytes));
            }
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => break,
            }
        }
        // A last line without a newline.
        if let Some(r) = parse_line(&buf)? {
            out.push(r);
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// One NDJSON line: `None` for a blank line or a record that does not parse.
fn parse_line(line: &[u8]) -> Result<Option<Record>, ClientError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_slice(line).map_err(|e| ClientError::Malformed(e.to_string()))?;
    Ok(record_or_skip(v))
}

fn record_or_skip(v: Value) -> Option<Record> {
    match Record::from_json(v) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(error = %e, "skipping routing record");
            None
        }
    }
}

fn parse_json_list(body: &[u8], field: &str, limit: usize) -> Result<Vec<Record>, ClientError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .cloned()
            .filter_map(record_or_skip)
            .take(limit)
            .collect()),
        Some(_) => Err(ClientError::Malformed(format!(
            "\"{field}\" is not an array"
        ))),
    }
}

/// Reads at most `max` bytes of the body: more is [`ClientError::TooLarge`], or, with
/// `truncate`, the first `max` bytes.
async fn read_bounded(
    resp: reqwest::Response,
    max: usize,
    truncate: bool,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > max {
            if truncate {
                out.extend_from_slice(&chunk[..max - out.len()]);
                return Ok(out);
            }
            return Err(ClientError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl ClientError {
    fn into_router_error(self) -> RouterError {
        match self {
            ClientError::Busy { retry_after, .. } => RouterError::Overloaded {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            ClientError::Http(e) if e.is_timeout() => RouterError::Timeout,
            ClientError::Status { status: 504, .. } => RouterError::Timeout,
            other => RouterError::Internal(other.to_string()),
        }
    }
}

/// A `RoutingClient` is a router itself: the node can delegate to another server.
#[async_trait]
impl ContentRouter for RoutingClient {
    async fn find_providers(&self, cid: &Cid, limit: usize) -> Result<Vec<Record>, RouterError> {
        RoutingClient::find_providers(self, cid, limit)
            .await
            .map_err(ClientError::into_router_error)
    }

    async fn find_peers(&self, peer: &PeerId, limit: usize) -> Result<Vec<Record>, RouterError> {
        RoutingClient::find_peers(self, peer, limit)
            .await
            .map_err(ClientError::into_router_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_list_null_missing_and_skips() {
        assert!(
            parse_json_list(br#"{"Providers":null}"#, "Providers", 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            parse_json_list(br#"{}"#, "Providers", 10)
                .unwrap()
                .is_empty()
        );
        let body = br#"{"Providers":[{"Schema":"peer","ID":"bad"},{"Schema":"x"},{"Schema":"y"}]}"#;
        let got = parse_json_list(body, "Providers", 10).unwrap();
        assert_eq!(
            got.iter().map(Record::schema).collect::<Vec<_>>(),
            vec!["x", "y"]
        );
        assert_eq!(parse_json_list(body, "Providers", 1).unwrap().len(), 1);
        assert!(parse_json_list(br#"{"Providers":{}}"#, "Providers", 10).is_err());
        assert!(parse_json_list(b"nope", "Providers", 10).is_err());
    }

    proptest! {
        #[test]
        fn json_list_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_json_list(s.as_bytes(), "Providers", 5);
            let _ = parse_line(s.as_bytes());
        }
    }
}
