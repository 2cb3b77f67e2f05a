//! The axum handlers of `/ipfs/…` (and the refusal of `/ipns/…`).
//!
//! Spec: trustless-gateway.md § "HTTP API", § "HTTP Response", § "Block Responses", § "CAR
//! Responses"; path-gateway.md § "Response Headers" (`Etag`, `Cache-Control`,
//! `Content-Disposition`, `Content-Location`, `X-Ipfs-Path`, `X-Ipfs-Roots`,
//! `X-Content-Type-Options`, `Accept-Ranges`), § "`If-None-Match`".

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use hydrant_unixfs::{DagError, HamtCursor, PathStep, resolve_path};

use crate::CarStreamError;
use crate::GatewayConfig;
use crate::car_stream::{CarRequest, CarStreamOptions, car_stream};
use crate::error::GatewayError;
use crate::request::{
    CarParams, Format, MEDIA_RAW, Negotiated, RequestError, content_disposition, negotiate,
    parse_content_path,
};
use hydrant_blocks::Blockstore;

/// `Cache-Control` of every `/ipfs/` response (path-gateway.md § "`Cache-Control`").
const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// The router's state.
pub(crate) struct AppState {
    pub(crate) blocks: Arc<dyn Blockstore>,
    pub(crate) config: GatewayConfig,
}

/// `GET`/`HEAD /ipfs/{cid}[/{path}]`.
pub(crate) async fn ipfs(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match serve(&state, method == Method::HEAD, &uri, &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// `/ipns/…`: not served.
pub(crate) async fn ipns() -> Response {
    GatewayError::IpnsUnsupported.into_response()
}

async fn serve(
    state: &AppState,
    head: bool,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let path = uri.path();
    let rest = path.strip_prefix("/ipfs/").unwrap_or_default();
    let content = parse_content_path(rest, state.config.max_path_segments)?;
    if header_str(headers, &HeaderName::from_static("service-worker")) == Some("script") {
        // path-gateway.md § "`Service-Worker`": "MUST be denied by returning HTTP 400".
        return Err(RequestError::InvalidPath("service worker registration").into());
    }
    let negotiated = negotiate(uri.query(), header_str(headers, &header::ACCEPT))?;
    let only_if_cached = header_str(headers, &header::CACHE_CONTROL)
        .is_some_and(|v| v.to_ascii_lowercase().contains("only-if-cached"));
    let if_none_match = header_str(headers, &header::IF_NONE_MATCH);
    let ctx = Ctx {
        state,
        head,
        uri,
        negotiated: &negotiated,
        only_if_cached,
        if_none_match,
    };
    match negotiated.format {
        Format::Raw => {
            if !content.segments.is_empty() {
                return Err(RequestError::RawWithPath.into());
            }
            serve_raw(&ctx, content.cid).await
        }
        Format::Car(params) => serve_car(&ctx, content.cid, &content.segments, params).await,
        format => {
            let range = header_str(headers, &header::RANGE);
            crate::deserialized::serve(&ctx, &content, format, range).await
        }
    }
}

/// What every response of one request needs: the state, the method, the URI and the
/// negotiated format and conditions.
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) head: bool,
    pub(crate) uri: &'a Uri,
    pub(crate) negotiated: &'a Negotiated,
    pub(crate) only_if_cached: bool,
    pub(crate) if_none_match: Option<&'a str>,
}

impl Ctx<'_> {
    /// The headers every answer to this request shares ([`Common::headers`]: ETag,
    /// immutable Cache-Control, X-Ipfs-Path, X-Ipfs-Roots, Content-Location when given).
    pub(crate) fn common<'b>(
        &'b self,
        etag: &'b str,
        roots: &'b [Cid],
        content_location: Option<String>,
    ) -> Common<'b> {
        Common {
            etag,
            x_ipfs_path: self.uri.path(),
            roots,
            content_location,
        }
    }

    /// `304 Not Modified` with `common`'s headers when the request's `If-None-Match` names
    /// its ETag (trustless-gateway.md § "If-None-Match"); `None` when the answer is needed.
    pub(crate) fn unchanged(&self, common: &Common<'_>) -> Option<Response> {
        etag_matches(self.if_none_match, common.etag).then(|| not_modified(common))
    }
    /// `Content-Location` with `format=` added, when the format came from `Accept`.
    pub(crate) fn content_location(&self, format: &str) -> Option<String> {
        if !self.negotiated.from_accept {
            return None;
        }
        Some(match self.uri.query().filter(|q| !q.is_empty()) {
            Some(q) => format!("{}?{q}&format={format}", self.uri.path()),
            None => format!("{}?format={format}", self.uri.path()),
        })
    }

    pub(crate) fn filename(&self, default: String) -> String {
        self.negotiated.filename.clone().unwrap_or(default)
    }

    pub(crate) async fn load_root(&self, cid: &Cid) -> Result<Bytes, GatewayError> {
        self.state
            .blocks
            .get(cid)
            .await?
            .ok_or(GatewayError::RootNotFound {
                only_if_cached: self.only_if_cached,
            })
    }
}

async fn serve_raw(ctx: &Ctx<'_>, cid: Cid) -> Result<Response, GatewayError> {
    let etag = format!("\"{cid}.raw\"");
    let roots = [cid];
    let common = ctx.common(&etag, &roots, ctx.content_location("raw"));
    if let Some(unchanged) = ctx.unchanged(&common) {
        return Ok(unchanged);
    }
    let data = ctx.load_root(&cid).await?;
    let mut headers = common.headers();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_RAW));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
    insert_disposition(&mut headers, &ctx.filename(format!("{cid}.bin")));
    let body = if ctx.head {
        Body::empty()
    } else {
        Body::from(data)
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

async fn serve_car(
    ctx: &Ctx<'_>,
    root: Cid,
    segments: &[String],
    params: CarParams,
) -> Result<Response, GatewayError> {
    let etag = car_etag(&root, segments, &params);
    if let Some(unchanged) = ctx.unchanged(&ctx.common(&etag, &[root], ctx.content_location("car")))
    {
        return Ok(unchanged);
    }
    let root_data = ctx.load_root(&root).await?;
    let (path_blocks, terminus, roots, _) = resolve(ctx.state, root, root_data, segments).await?;
    let common = ctx.common(&etag, &roots, ctx.content_location("car"));
    let mut headers = common.headers();
    let content_type = format!(
        "application/vnd.ipld.car; version=1; order=dfs; dups={}",
        if params.dups { "y" } else { "n" }
    );
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    insert_disposition(&mut headers, &ctx.filename(format!("{terminus}.car")));
    if ctx.head {
        // A body of unknown length, as GET's stream: the headers are GET's (no
        // Content-Length, chunked), and HEAD sends no body.
        let none = futures::stream::empty::<Result<Bytes, std::io::Error>>();
        return Ok((StatusCode::OK, headers, Body::from_stream(none)).into_response());
    }
    let request = CarRequest {
        root,
        path_blocks,
        terminus,
        scope: params.scope,
        entity_bytes: params.entity_bytes,
        dups: params.dups,
    };
    let options = CarStreamOptions {
        prefetch_window: ctx.state.config.prefetch_window,
        prefetch_bytes: ctx.state.config.prefetch_bytes,
        walker_limits: ctx.state.config.walker_limits,
        passthrough: ctx.state.config.passthrough,
    };
    let stream =
        car_stream(ctx.state.blocks.clone(), request, options).then(move |item| async move {
            if let Err(e) = &item {
                // trustless-gateway.md § "Streaming and Missing Child Blocks": the status is
                // sent, so the body is cut short (hyper aborts the response: no final chunk).
                // No CID in the log (DESIGN.md, "Logs"): the kind of failure only; a store
                // failure is ours (warn), a missing or undecodable block is the stored DAG's.
                match e {
                    CarStreamError::Store(_) => {
                        tracing::warn!("CAR stream terminated early: storage failed")
                    }
                    CarStreamError::MissingBlock { .. } => {
                        tracing::debug!(
                            "CAR stream terminated early: a block of the DAG is missing"
                        )
                    }
                    CarStreamError::Dag(_) => {
                        tracing::debug!("CAR stream terminated early: a block does not decode")
                    }
                }
                // Let hyper flush what it has buffered (status line and blocks so far) before
                // the error makes it drop the connection.
                tokio::task::yield_now().await;
            }
            item
        });
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}

/// Walks `segments` from `root` (whose bytes are `root_data`), reading each block on the way.
/// Returns the blocks that verify the path (root first, terminus excluded), the terminus, the
/// logical roots (root, then the CID each segment resolved to) for `X-Ipfs-Roots`, and the
/// terminus's bytes.
pub(crate) async fn resolve(
    state: &AppState,
    root: Cid,
    root_data: Bytes,
    segments: &[String],
) -> Result<Resolution, GatewayError> {
    let mut path_blocks = Vec::new();
    let mut roots = vec![root];
    let (mut cur, mut data) = (root, root_data);
    let mut cursor = HamtCursor::default();
    let mut index = 0;
    while index < segments.len() {
        let step = match resolve_path(&cur, &data, &segments[index..], &mut cursor) {
            Ok(step) => step,
            Err(DagError::UnsupportedCodec { .. }) => return Err(GatewayError::PathUnsupported),
            Err(e) => return Err(e.into()),
        };
        path_blocks.push(cur);
        if path_blocks.len() > state.config.max_path_blocks {
            return Err(GatewayError::PathTooDeep);
        }
        let next = match step {
            PathStep::Link { cid, consumed } => {
                index += consumed;
                if consumed > 0 {
                    roots.push(cid);
                }
                cid
            }
            PathStep::Shard(cid) => cid,
            PathStep::NotFound { .. } | PathStep::NotTraversable { .. } => {
                return Err(GatewayError::PathNotFound);
            }
            PathStep::EndsInsideBlock => return Err(GatewayError::PathUnsupported),
        };
        data = state
            .blocks
            .get(&next)
            .await?
            .ok_or(GatewayError::PathNotFound)?;
        cur = next;
    }
    Ok((path_blocks, cur, roots, data))
}

/// What [`resolve`] returns: path blocks, terminus, logical roots, terminus bytes.
pub(crate) type Resolution = (Vec<Cid>, Cid, Vec<Cid>, Bytes);

/// Strong ETag of a CAR response: our CARs are deterministic (DFS over immutable blocks), so
/// the root, the path and every parameter that changes the bytes identify them
/// (path-gateway.md § "`Etag`"; trustless-gateway.md: "must include unique prefix based on
/// the passed scope type", "MUST augment the returned Etag based on the passed
/// entity-bytes").
fn car_etag(root: &Cid, segments: &[String], params: &CarParams) -> String {
    let mut key = String::new();
    for s in segments {
        key.push('/');
        key.push_str(s);
    }
    let bytes = match params.entity_bytes {
        Some(r) => format!(
            "{}:{}",
            r.from,
            r.to.map_or("*".to_string(), |t| t.to_string())
        ),
        None => String::new(),
    };
    key.push_str(&format!("|v1|dfs|{}|{bytes}", params.dups));
    format!(
        "\"{root}.car.{}.{:016x}\"",
        params.scope.as_str(),
        fnv1a64(key.as_bytes())
    )
}

/// FNV-1a, 64 bits: stable across builds, unlike `std`'s hasher.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `If-None-Match` against our ETag: `*` or any listed tag, weak comparison (RFC 9110
/// § 13.1.2).
fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(value) = if_none_match else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The headers every `/ipfs/` response carries (path-gateway.md § "Response Headers").
pub(crate) struct Common<'a> {
    pub(crate) etag: &'a str,
    pub(crate) x_ipfs_path: &'a str,
    pub(crate) roots: &'a [Cid],
    pub(crate) content_location: Option<String>,
}

impl Common<'_> {
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        insert(&mut h, header::ETAG, self.etag);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        insert(
            &mut h,
            HeaderName::from_static("x-ipfs-path"),
            self.x_ipfs_path,
        );
        let roots: Vec<String> = self.roots.iter().map(Cid::to_string).collect();
        insert(
            &mut h,
            HeaderName::from_static("x-ipfs-roots"),
            &roots.join(","),
        );
        if let Some(location) = &self.content_location {
            insert(&mut h, header::CONTENT_LOCATION, location);
        }
        h
    }
}

fn not_modified(common: &Common<'_>) -> Response {
    (StatusCode::NOT_MODIFIED, common.headers(), Body::empty()).into_response()
}

/// Inserts a header whose value may come from the request; skipped if not a valid value.
pub(crate) fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn insert_disposition(headers: &mut HeaderMap, filename: &str) {
    insert(
        headers,
        header::CONTENT_DISPOSITION,
        &content_disposition(filename),
    );
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydrant_unixfs::{DagScope, EntityBytes};

    #[test]
    fn etag_matching() {
        let e = "\"abc.raw\"";
        assert!(etag_matches(Some("\"abc.raw\""), e));
        assert!(etag_matches(Some("\"x\", W/\"abc.raw\""), e));
        assert!(etag_matches(Some("*"), e));
        assert!(!etag_matches(Some("\"abc\""), e));
        assert!(!etag_matches(None, e));
    }

    #[test]
    fn car_etags_differ_by_every_parameter() {
        let root = Cid::default();
        let p = |scope, entity_bytes, dups| CarParams {
            scope,
            entity_bytes,
            dups,
        };
        let tags = [
            car_etag(&root, &[], &p(DagScope::All, None, false)),
            car_etag(&root, &[], &p(DagScope::All, None, true)),
            car_etag(&root, &[], &p(DagScope::Block, None, false)),
            car_etag(&root, &[], &p(DagScope::Entity, None, false)),
            car_etag(
                &root,
                &[],
                &p(
                    DagScope::Entity,
                    Some(EntityBytes { from: 0, to: None }),
                    false,
                ),
            ),
            car_etag(&root, &["a".into()], &p(DagScope::All, None, false)),
        ];
        for (i, a) in tags.iter().enumerate() {
            assert!(a.starts_with('"') && a.ends_with('"'));
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(tags[2].contains(".car.block."));
    }
}
