//! Deserialized responses of the path gateway: what `/ipfs/{cid}[/{path}]` answers without a
//! trustless format (`?format=raw|car`).
//!
//! Spec: path-gateway.md § "Response Payload" (by codec of the terminus), § "`Range` (request
//! header)", § "`format` (request query parameter)", § "`filename`", § "`download`",
//! § "Response Headers" (`Etag`, `Cache-Control`, `Content-Type`, `Content-Disposition`,
//! `Content-Range`, `Accept-Ranges`, `Location`, `X-Ipfs-Path`, `X-Ipfs-Roots`),
//! § "Generated HTML with directory index", § "`406` Not Acceptable" (IPIP-0524: no codec
//! conversions), IPIP-0288 (`?format=tar`).
//!
//! Behaviour by terminus:
//! - UnixFS file (raw block, dag-pb `File`/`Raw`): its bytes, streamed one block at a time
//!   through [`FileReader`]; `Content-Type` from the name's extension (the `filename` query
//!   parameter, else the last path segment, see [`content_type_for_name`]), else sniffed from
//!   the first bytes ([`sniff_content_type`]); `ETag: "<cid>"`; `Accept-Ranges: bytes`.
//!   `Range` ([`parse_range`]): one range is a 206 with `Content-Range`, several a 206
//!   `multipart/byteranges`, none satisfiable a 416 with `Content-Range: bytes */{size}`;
//!   only the blocks under the ranges are read (and, for the type, only the root block).
//! - UnixFS directory: without a trailing `/`, 301 to the URL with one (query kept); with it,
//!   its `index.html` served as a file (`ETag: "<dir cid>"`), else an HTML listing
//!   (`ETag: "DirIndex-<version>_CID-<cid>"`) of at most
//!   [`crate::GatewayConfig::max_listing_entries`] entries (more is 501), HAMT-sharded
//!   directories included; sizes shown are the links' `Tsize` (DAG size: no child is read).
//! - UnixFS symlink: not followed; its target as `text/plain` (as the upstream conformance
//!   test `TestGatewaySymlink` expects: 200 with the target as body).
//! - dag-json, dag-cbor, json, cbor blocks: the block as is, with the codec's media type
//!   (`?format=json` / `?format=cbor` give a dag-json / dag-cbor block the plain type);
//!   ranges as for files. `Accept: text/html` on a dag-json/dag-cbor block: a small HTML page
//!   with links to the block in each format (`ETag: "DagIndex-…"`).
//! - `?format=tar`: a tar of the UnixFS file or tree ([`crate::tar`]), `ETag: W/"<cid>.x-tar"`.
//!   Entry names with `/` or `..` are refused by the exporter (unixfs.md § "Restricted
//!   Names"): in the root directory that is an error status (400), deeper it cuts the body
//!   (the upstream "relative paths inside root works" case is not supported).
//! - A format that would need a codec conversion (dag-json of dag-pb or dag-cbor, dag-cbor of
//!   dag-json, tar of non-UnixFS, …): 406 ([`GatewayError::CodecMismatch`]).
//!
//! Decisions where the spec leaves room:
//! - No codec conversions at all (IPIP-0524; path-gateway.md § "`406` Not Acceptable").
//! - `?format=json` of a UnixFS file serves its bytes as `application/json` without checking
//!   they are JSON (that would need the whole file before the first byte).
//! - A 206 keeps the representation's ETag (`"<cid>"`, RFC 9110 § 8.8.3: an ETag names the
//!   selected representation, not the part); `If-None-Match` is checked before `Range`.
//! - A malformed `Range`, or one of more than [`MAX_RANGES`] ranges, is ignored (200 with the
//!   whole content, RFC 9110 § 14.2).
//! - Tar entries without a UnixFS `mtime` get mtime 0 (deterministic bytes).
//! - The HTML listing and the dag page are sent with `Cache-Control: public, max-age=604800,
//!   stale-while-revalidate=2678400` (they change with this gateway's version, not the CID).
//! - A missing block before the response starts is 404 (a non-recursive gateway: the
//!   content is not retrievable here); after it started, the body is cut short.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::Blockstore;
use hydrant_unixfs::exporter::{
    DirLister, ExportError, FileReader, FileStep, TreeEntryKind, TreeExporter, TreeStep,
};
use hydrant_unixfs::{DataType, PbNode, UnixFsData};

use crate::error::GatewayError;
use crate::handlers::{Common, Ctx, insert, resolve};
use crate::request::{
    ContentPath, Format, MEDIA_CBOR, MEDIA_DAG_CBOR, MEDIA_DAG_JSON, MEDIA_JSON, MEDIA_TAR,
    disposition,
};
use crate::tar::{TAR_BLOCK, TarKind, padding, tar_header, tar_mode};

mod content;
mod html;
mod tar_body;

pub use content::{ByteRange, Ranges, content_type_for_name, parse_range, sniff_content_type};
use html::*;
pub use tar_body::TarBody;
use tar_body::serve_tar;

/// Default of [`crate::GatewayConfig::max_listing_entries`]: 65 536 entries.
pub const DEFAULT_MAX_LISTING_ENTRIES: usize = 65_536;

/// Most ranges of one `Range` header honoured; more is ignored (the whole content is sent).
pub const MAX_RANGES: usize = 16;

/// Version of the generated HTML (listing and dag page), part of their ETags: bump it when
/// the HTML changes (path-gateway.md § "`Etag`": "based on the version of gateway
/// implementation").
const HTML_VERSION: &str = "hydrant-1";

/// `Cache-Control` of generated HTML.
const HTML_CACHE_CONTROL: &str = "public, max-age=604800, stale-while-revalidate=2678400";

/// Bytes of a file read to sniff its type.
const SNIFF_LEN: usize = 512;

const CODEC_RAW: u64 = 0x55;
const CODEC_DAG_PB: u64 = 0x70;
const CODEC_DAG_CBOR: u64 = 0x71;
const CODEC_CBOR: u64 = 0x51;
const CODEC_DAG_JSON: u64 = 0x0129;
const CODEC_JSON: u64 = 0x0200;

/// The resolved terminus of a content path.
struct Target {
    cid: Cid,
    data: Bytes,
    /// Logical roots (`X-Ipfs-Roots`).
    roots: Vec<Cid>,
    /// Decoded path segments after the root CID.
    segments: Vec<String>,
}

impl Target {
    /// The last path segment, if any.
    fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }
}

/// Answers a request whose negotiated format is neither raw nor CAR.
pub(crate) async fn serve(
    ctx: &Ctx<'_>,
    content: &ContentPath,
    format: Format,
    range: Option<&str>,
) -> Result<Response, GatewayError> {
    let root_data = ctx.load_root(&content.cid).await?;
    let (_, cid, roots, data) =
        resolve(ctx.state, content.cid, root_data, &content.segments).await?;
    let target = Target {
        cid,
        data,
        roots,
        segments: content.segments.clone(),
    };
    match cid.codec() {
        CODEC_RAW | CODEC_DAG_PB => serve_unixfs(ctx, target, format, range).await,
        CODEC_DAG_JSON | CODEC_DAG_CBOR | CODEC_JSON | CODEC_CBOR => {
            serve_block(ctx, &target, format, range)
        }
        _ if matches!(format, Format::Deserialized { .. }) => Err(GatewayError::NotDeserializable),
        _ => Err(GatewayError::CodecMismatch),
    }
}

/// What a UnixFS node is.
enum UnixFsKind {
    File,
    Directory,
    Symlink(Bytes),
}

fn unixfs_kind(cid: &Cid, data: &[u8]) -> Result<UnixFsKind, GatewayError> {
    if cid.codec() == CODEC_RAW {
        return Ok(UnixFsKind::File);
    }
    let node = PbNode::decode(cid, data)?;
    let Some(d) = node.data.as_deref() else {
        return Err(GatewayError::NotDeserializable);
    };
    let ufs = UnixFsData::decode(cid, d).map_err(|_| GatewayError::NotDeserializable)?;
    Ok(match ufs.data_type {
        DataType::File | DataType::Raw => UnixFsKind::File,
        DataType::Directory | DataType::HamtShard => UnixFsKind::Directory,
        DataType::Symlink => UnixFsKind::Symlink(ufs.data),
        DataType::Metadata => return Err(GatewayError::NotDeserializable),
    })
}

async fn serve_unixfs(
    ctx: &Ctx<'_>,
    target: Target,
    format: Format,
    range: Option<&str>,
) -> Result<Response, GatewayError> {
    let kind = match unixfs_kind(&target.cid, &target.data) {
        Err(GatewayError::NotDeserializable) if !matches!(format, Format::Deserialized { .. }) => {
            return Err(GatewayError::CodecMismatch);
        }
        other => other?,
    };
    match (format, kind) {
        (Format::Tar, _) => serve_tar(ctx, &target).await,
        (Format::Json, UnixFsKind::File) => {
            let etag = format!("\"{}.json\"", target.cid);
            let file = FileTarget {
                cid: target.cid,
                data: target.data.clone(),
                etag,
                name: target.name().map(str::to_string),
            };
            serve_file(ctx, file, &target.roots, Some(MEDIA_JSON), range).await
        }
        (Format::Deserialized { .. }, UnixFsKind::File) => {
            let file = FileTarget {
                cid: target.cid,
                data: target.data.clone(),
                etag: format!("\"{}\"", target.cid),
                name: target.name().map(str::to_string),
            };
            serve_file(ctx, file, &target.roots, None, range).await
        }
        (Format::Deserialized { .. }, UnixFsKind::Directory) => {
            serve_directory(ctx, target, range).await
        }
        (Format::Deserialized { .. }, UnixFsKind::Symlink(link)) => {
            serve_symlink(ctx, &target, link)
        }
        _ => Err(GatewayError::CodecMismatch),
    }
}

/// A file to serve: its root CID and block, the ETag, and its name (for the type).
struct FileTarget {
    cid: Cid,
    data: Bytes,
    etag: String,
    name: Option<String>,
}

/// Serves a UnixFS file (also a directory's `index.html`); `forced_type` overrides the type.
async fn serve_file(
    ctx: &Ctx<'_>,
    file: FileTarget,
    roots: &[Cid],
    forced_type: Option<&'static str>,
    range: Option<&str>,
) -> Result<Response, GatewayError> {
    let common = ctx.common(
        &file.etag,
        roots,
        forced_type.and_then(|_| ctx.content_location("json")),
    );
    if let Some(unchanged) = ctx.unchanged(&common) {
        return Ok(unchanged);
    }
    let path = ctx.uri.path().to_string();
    let size = file_size(&file.cid, &file.data, &path)?;
    let ranges = range.map_or(Ranges::Ignore, |r| parse_range(r, size));
    let name_type = ctx
        .negotiated
        .filename
        .as_deref()
        .or(file.name.as_deref())
        .and_then(content_type_for_name);
    let mut first: Option<(Bytes, Box<FileReader>)> = None;
    let content_type = match forced_type.or(name_type) {
        Some(t) => t.to_string(),
        None => match ranges {
            // Whole file: read its first bytes (they are needed anyway) and sniff them.
            Ranges::Ignore => {
                let mut reader = FileReader::new(file.cid, path.clone(), 0, None);
                let mut source = BlockSource::new(ctx.state.blocks.clone(), &file);
                let head = source.next_file_bytes(&mut reader).await?;
                let t = sniff_content_type(head.as_deref().unwrap_or_default());
                if let Some(head) = head {
                    first = Some((head, Box::new(reader)));
                }
                t.to_string()
            }
            // A range: sniff only what the root block holds, never read another block.
            _ => sniff_content_type(&root_bytes(&file.cid, &file.data, &path)).to_string(),
        },
    };
    let mut headers = common.headers();
    insert(&mut headers, header::CONTENT_TYPE, &content_type);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let default_name = || {
        file.name
            .clone()
            .unwrap_or_else(|| ctx.uri.path().rsplit('/').next().unwrap_or("").to_string())
    };
    if ctx.negotiated.download {
        insert(
            &mut headers,
            header::CONTENT_DISPOSITION,
            &disposition("attachment", &ctx.filename(default_name())),
        );
    } else if let Some(name) = &ctx.negotiated.filename {
        insert(
            &mut headers,
            header::CONTENT_DISPOSITION,
            &disposition("inline", name),
        );
    }
    let source = Source::File {
        cid: file.cid,
        path,
        first,
    };
    let store = BlockSource::new(ctx.state.blocks.clone(), &file);
    respond_ranged(ctx, headers, &content_type, size, source, store, ranges)
}

/// The bytes of a file's root block alone (raw block data, or a dag-pb node's own data).
fn root_bytes(cid: &Cid, data: &Bytes, path: &str) -> Bytes {
    let mut reader = FileReader::new(*cid, path, 0, Some(SNIFF_LEN as u64));
    let mut out = Vec::new();
    loop {
        match reader.next() {
            Ok(FileStep::Need(c)) if c == *cid => {
                if reader.on_block(cid, data).is_err() {
                    break;
                }
            }
            Ok(FileStep::Bytes(b)) => out.extend_from_slice(&b),
            _ => break,
        }
    }
    Bytes::from(out)
}

/// Size of the UnixFS file rooted at `cid` (block `data`), from its root block alone.
fn file_size(cid: &Cid, data: &[u8], path: &str) -> Result<u64, GatewayError> {
    let mut reader = FileReader::new(*cid, path, 0, Some(0));
    loop {
        match reader.next()? {
            FileStep::Need(c) if c == *cid => reader.on_block(cid, data)?,
            _ => break,
        }
        if reader.size().is_some() {
            break;
        }
    }
    reader
        .size()
        .ok_or(GatewayError::Export(ExportError::MissingBlock {
            cid: *cid,
            path: path.to_string(),
        }))
}

/// Where the bytes of a ranged response come from.
enum Source {
    /// A block in memory.
    Memory(Bytes),
    /// A UnixFS file; `first`: bytes already read from offset 0 and the reader that read
    /// them (only for a whole-file response).
    File {
        cid: Cid,
        path: String,
        first: Option<(Bytes, Box<FileReader>)>,
    },
}

/// One piece of a response body.
enum Part {
    Static(Bytes),
    File(Box<FileReader>),
}

impl Source {
    /// The parts giving bytes `start..=end`.
    fn parts(&mut self, start: u64, end: u64, size: u64, out: &mut VecDeque<Part>) {
        match self {
            Source::Memory(data) => {
                let (s, e) = (start as usize, (end + 1) as usize);
                out.push_back(Part::Static(data.slice(s..e.min(data.len()))));
            }
            Source::File { cid, path, first } => {
                if start == 0
                    && end + 1 == size
                    && let Some((head, reader)) = first.take()
                {
                    out.push_back(Part::Static(head));
                    out.push_back(Part::File(reader));
                    return;
                }
                let reader = FileReader::new(*cid, path.clone(), start, Some(end + 1 - start));
                out.push_back(Part::File(Box::new(reader)));
            }
        }
    }
}

/// The 200 or 206 (single or multipart) response of `source` (`size` bytes) under `ranges`.
fn respond_ranged(
    ctx: &Ctx<'_>,
    mut headers: HeaderMap,
    content_type: &str,
    size: u64,
    mut source: Source,
    store: BlockSource,
    ranges: Ranges,
) -> Result<Response, GatewayError> {
    let mut parts = VecDeque::new();
    let (status, length) = match ranges {
        Ranges::Unsatisfiable => return Err(GatewayError::RangeNotSatisfiable { size }),
        Ranges::Ignore => {
            if size > 0 {
                source.parts(0, size - 1, size, &mut parts);
            }
            (StatusCode::OK, size)
        }
        Ranges::Satisfiable(list) if list.len() == 1 => {
            let r = list[0];
            insert(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{size}", r.start, r.end),
            );
            source.parts(r.start, r.end, size, &mut parts);
            (StatusCode::PARTIAL_CONTENT, r.end - r.start + 1)
        }
        Ranges::Satisfiable(list) => {
            let boundary = boundary();
            let mut length = 0u64;
            for r in &list {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n",
                    r.start, r.end
                );
                length += head.len() as u64 + (r.end - r.start + 1);
                parts.push_back(Part::Static(Bytes::from(head)));
                source.parts(r.start, r.end, size, &mut parts);
            }
            let tail = format!("\r\n--{boundary}--\r\n");
            length += tail.len() as u64;
            parts.push_back(Part::Static(Bytes::from(tail)));
            insert(
                &mut headers,
                header::CONTENT_TYPE,
                &format!("multipart/byteranges; boundary={boundary}"),
            );
            (StatusCode::PARTIAL_CONTENT, length)
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if ctx.head {
        return Ok((status, headers, Body::empty()).into_response());
    }
    let body = PartsBody { store, parts };
    Ok((status, headers, stream_body(body, None)).into_response())
}

/// A multipart boundary: not predictable by the content's author.
fn boundary() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "hydrant{:016x}",
        crate::handlers::fnv1a64(&nanos.to_le_bytes())
    )
}

/// Blocks for a response body: the store, with the root block already in memory.
struct BlockSource {
    store: Arc<dyn Blockstore>,
    root: (Cid, Bytes),
}

impl BlockSource {
    fn new(store: Arc<dyn Blockstore>, file: &FileTarget) -> Self {
        BlockSource {
            store,
            root: (file.cid, file.data.clone()),
        }
    }

    /// Block `cid`; a missing one is [`ExportError::MissingBlock`] at `path`.
    async fn get(&self, cid: &Cid, path: &str) -> Result<Bytes, GatewayError> {
        if *cid == self.root.0 {
            return Ok(self.root.1.clone());
        }
        self.store.get(cid).await?.ok_or_else(|| {
            GatewayError::Export(ExportError::MissingBlock {
                cid: *cid,
                path: path.to_string(),
            })
        })
    }

    /// Drives `reader` to its next bytes (`None`: done), one block at a time.
    async fn next_file_bytes(
        &mut self,
        reader: &mut FileReader,
    ) -> Result<Option<Bytes>, GatewayError> {
        loop {
            match reader.next()? {
                FileStep::Need(cid) => {
                    let data = self.get(&cid, reader.path()).await?;
                    reader.on_block(&cid, &data)?;
                }
                FileStep::Bytes(b) => return Ok(Some(b)),
                FileStep::Done => return Ok(None),
            }
        }
    }
}

/// A source of body chunks (`Ok(None)` at the end).
trait Chunks: Send + 'static {
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, GatewayError>> + Send;
}

/// A body of static pieces and file ranges, in order.
struct PartsBody {
    store: BlockSource,
    parts: VecDeque<Part>,
}

impl Chunks for PartsBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        while let Some(part) = self.parts.front_mut() {
            match part {
                Part::Static(b) => {
                    let b = std::mem::take(b);
                    self.parts.pop_front();
                    if !b.is_empty() {
                        return Ok(Some(b));
                    }
                }
                Part::File(reader) => match self.store.next_file_bytes(reader).await? {
                    Some(b) => return Ok(Some(b)),
                    None => {
                        self.parts.pop_front();
                    }
                },
            }
        }
        Ok(None)
    }
}

/// The body of `source`'s chunks (after `first`, if given). A failure once the status is
/// sent cuts the body short (hyper aborts it: no clean end), as for CAR streams.
fn stream_body<C: Chunks>(source: C, first: Option<Bytes>) -> Body {
    let state = (first, Some(source));
    let stream = futures::stream::unfold(state, |(mut first, mut source)| async move {
        if let Some(chunk) = first.take() {
            return Some((Ok(chunk), (None, source)));
        }
        let result = source.as_mut()?.next_chunk().await;
        match result {
            Ok(Some(chunk)) => Some((Ok(chunk), (None, source))),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(
                    status = e.status().as_u16(),
                    "deserialized response cut short"
                );
                tokio::task::yield_now().await;
                Some((
                    Err(std::io::Error::other("response cut short")),
                    (None, None),
                ))
            }
        }
    });
    Body::from_stream(stream)
}

/// A dag-json, dag-cbor, json or cbor block, as is (path-gateway.md § "Response Payload").
fn serve_block(
    ctx: &Ctx<'_>,
    target: &Target,
    format: Format,
    range: Option<&str>,
) -> Result<Response, GatewayError> {
    let codec = target.cid.codec();
    // (media type, ETag suffix, default disposition, file extension)
    let (media, suffix, kind, ext) = match (format, codec) {
        (Format::Deserialized { html: true }, CODEC_DAG_JSON | CODEC_DAG_CBOR) => {
            return Ok(dag_page(ctx, target));
        }
        (Format::Deserialized { .. } | Format::DagJson, CODEC_DAG_JSON) => {
            (MEDIA_DAG_JSON, "dag-json", "inline", "json")
        }
        (Format::Deserialized { .. } | Format::DagCbor, CODEC_DAG_CBOR) => {
            (MEDIA_DAG_CBOR, "dag-cbor", "attachment", "cbor")
        }
        (Format::Deserialized { .. } | Format::Json, CODEC_JSON)
        | (Format::Json, CODEC_DAG_JSON) => (MEDIA_JSON, "json", "inline", "json"),
        (Format::Deserialized { .. } | Format::Cbor, CODEC_CBOR)
        | (Format::Cbor, CODEC_DAG_CBOR) => (MEDIA_CBOR, "cbor", "attachment", "cbor"),
        _ => return Err(GatewayError::CodecMismatch),
    };
    let etag = format!("\"{}.{suffix}\"", target.cid);
    let common = ctx.common(
        &etag,
        &target.roots,
        format.query_name().and_then(|f| ctx.content_location(f)),
    );
    if let Some(unchanged) = ctx.unchanged(&common) {
        return Ok(unchanged);
    }
    let mut headers = common.headers();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let kind = if ctx.negotiated.download {
        "attachment"
    } else {
        kind
    };
    let name = ctx.filename(format!("{}.{ext}", target.cid));
    insert(
        &mut headers,
        header::CONTENT_DISPOSITION,
        &disposition(kind, &name),
    );
    let size = target.data.len() as u64;
    let ranges = range.map_or(Ranges::Ignore, |r| parse_range(r, size));
    let store = BlockSource {
        store: ctx.state.blocks.clone(),
        root: (target.cid, target.data.clone()),
    };
    respond_ranged(
        ctx,
        headers,
        media,
        size,
        Source::Memory(target.data.clone()),
        store,
        ranges,
    )
}

/// A UnixFS symlink: not followed; its target, as text.
fn serve_symlink(ctx: &Ctx<'_>, target: &Target, link: Bytes) -> Result<Response, GatewayError> {
    let etag = format!("\"{}\"", target.cid);
    let common = ctx.common(&etag, &target.roots, None);
    if let Some(unchanged) = ctx.unchanged(&common) {
        return Ok(unchanged);
    }
    let mut headers = common.headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(link.len()));
    let body = if ctx.head {
        Body::empty()
    } else {
        Body::from(link)
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn ranges() {
        use Ranges::*;
        assert_eq!(parse_range("bytes=6-16", 31), Satisfiable(vec![r(6, 16)]));
        assert_eq!(parse_range("bytes=-3", 31), Satisfiable(vec![r(28, 30)]));
        assert_eq!(parse_range("bytes=-100", 31), Satisfiable(vec![r(0, 30)]));
        assert_eq!(parse_range("bytes=20-", 31), Satisfiable(vec![r(20, 30)]));
        assert_eq!(parse_range("bytes=20-99", 31), Satisfiable(vec![r(20, 30)]));
        assert_eq!(
            parse_range("bytes=6-16, 0-4", 31),
            Satisfiable(vec![r(6, 16), r(0, 4)])
        );
        assert_eq!(
            parse_range("bytes=40-50,0-0", 31),
            Satisfiable(vec![r(0, 0)])
        );
        assert_eq!(parse_range("bytes=31-", 31), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 31), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        for bad in [
            "",
            "bytes",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=1",
            "bytes=,",
        ] {
            assert_eq!(parse_range(bad, 31), Ignore, "{bad}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(parse_range(&many, 31), Ignore);
    }

    #[test]
    fn types() {
        assert_eq!(content_type_for_name("a.JSON"), Some("application/json"));
        assert_eq!(
            content_type_for_name("index.html"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(content_type_for_name("noext"), None);
        assert_eq!(
            sniff_content_type(b"hello world\n"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(sniff_content_type(b""), "text/plain; charset=utf-8");
        assert_eq!(
            sniff_content_type(b"  <!DOCTYPE html><html>"),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            sniff_content_type(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\"/>"),
            "image/svg+xml"
        );
        assert_eq!(sniff_content_type(b"<svg xmlns=\"x\"/>"), "image/svg+xml");
        assert_eq!(sniff_content_type(b"\x89PNG\r\n\x1a\n\0\0"), "image/png");
        assert_eq!(sniff_content_type(b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(sniff_content_type(b"GIF89a..."), "image/gif");
        assert_eq!(
            sniff_content_type(b"\x00\x01\x02binary"),
            "application/octet-stream"
        );
        // A UTF-8 character cut by the sniff window is still text.
        let mut s = vec![b'a'; SNIFF_LEN - 1];
        s.extend_from_slice("é".as_bytes());
        assert_eq!(sniff_content_type(&s), "text/plain; charset=utf-8");
    }

    #[test]
    fn encoding() {
        assert_eq!(encode_segment("ą"), "%C4%85");
        assert_eq!(
            encode_segment(&encode_segment("file-źł.txt")),
            "file-%25C5%25BA%25C5%2582.txt"
        );
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(human_size(31), "31 B");
        assert_eq!(human_size(1536), "1.5 KiB");
    }

    proptest! {
        /// Outside input never panics, and every range it yields lies inside the content.
        #[test]
        fn range_parser_total(h in ".{0,48}", size in 0u64..100) {
            if let Ranges::Satisfiable(list) = parse_range(&h, size) {
                for r in list {
                    prop_assert!(r.start <= r.end && r.end < size);
                }
            }
            let _ = sniff_content_type(h.as_bytes());
        }
    }
}
