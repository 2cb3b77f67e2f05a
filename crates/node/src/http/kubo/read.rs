//! The Kubo RPC commands that read UnixFS and blocks out of the store: `cat`, `ls`, `get`,
//! `block/get` and `block/stat`, answered as Kubo (`core/commands/{cat,ls,get,block}.go`)
//! answers them.
//!
//! Blocks come from the node's block store one at a time and go through the sans-I/O UnixFS
//! exporter (`hydrant_unixfs::exporter`, spec: unixfs.md); file bytes are streamed as they are
//! read, never collected, so a request holds one block and the exporter's pending links.
//!
//! Errors: everything that can fail before the first byte (a bad path, a block not in the
//! store, a directory given to `cat`) is a Kubo error ([`KuboError`]); a failure once bytes
//! have been sent (a missing block deep in a file) cuts the body short (the HTTP/1.1 chunked
//! body is not terminated), so the client sees a broken stream rather than a complete-looking
//! truncated file, as a Kubo client sees its `X-Stream-Error` trailer.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::Blockstore as _;
use hydrant_blockstore::CarBlockstore;
use hydrant_unixfs::exporter::{DirLister, ExportError, FileReader, FileStep, Resolved, Resolver};
use hydrant_unixfs::{DataType, PbNode, UnixFsData};
use serde::Serialize;

use super::{KuboError, Params, byte_stream, ipfs_path, json, ndjson};
use crate::http::state::ApiState;

/// Multicodec of raw blocks.
pub(crate) const CODEC_RAW: u64 = 0x55;
/// Multicodec of dag-pb blocks.
pub(crate) const CODEC_DAG_PB: u64 = 0x70;

/// Kubo's message for a block the store does not hold (`block/get` of a missing CID answers
/// exactly this, 500 `Code` 0).
pub(crate) fn block_not_found(cid: &Cid) -> KuboError {
    KuboError::Failed(format!(
        "block was not found locally (offline): ipld: could not find {cid}"
    ))
}

/// The bytes of block `cid` (identity CIDs are answered from their digest by the store).
///
/// # Errors
/// [`block_not_found`] when the store does not hold it; [`KuboError::Internal`] when the store
/// fails.
pub(crate) async fn fetch_block(store: &CarBlockstore, cid: &Cid) -> Result<Bytes, KuboError> {
    match store.get(cid).await {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(block_not_found(cid)),
        Err(e) => Err(KuboError::internal(
            "the block store failed",
            format!("reading block {cid}: {e}"),
        )),
    }
}

/// An exporter error as Kubo reports it: a missing block with Kubo's message, a path climbing
/// above its root as the client's fault (400), anything else (no such entry, not a file, an
/// invalid DAG) as a failed command (500) with the exporter's message, which names the path
/// and the CID.
pub(crate) fn export_error(e: ExportError) -> KuboError {
    match e {
        ExportError::MissingBlock { cid, .. } => block_not_found(&cid),
        e @ ExportError::InvalidPath { .. } => KuboError::Client(e.to_string()),
        e => KuboError::Failed(e.to_string()),
    }
}

/// Resolves an IPFS path argument (`CID[/a/b]`, `/ipfs/CID[/a/b]`) through UnixFS
/// directories and HAMT shards (unixfs.md § "UnixFS Paths") to the CID it names.
///
/// # Errors
/// [`KuboError::Client`] for an unparsable path; those of [`fetch_block`] and
/// [`export_error`] on the way.
pub(crate) async fn resolve(store: &CarBlockstore, arg: &str) -> Result<Resolved, KuboError> {
    let (root, path) = ipfs_path(arg)?;
    let mut resolver = Resolver::new(root, path).map_err(export_error)?;
    while let Some(cid) = resolver.next_wanted().map_err(export_error)? {
        let data = fetch_block(store, &cid).await?;
        resolver.on_block(&cid, &data).map_err(export_error)?;
    }
    resolver.finish().map_err(export_error)
}

/// The CID an argument names: the CID itself when it has no path below it (no block read),
/// else the UnixFS resolution of the path ([`resolve`]).
pub(crate) async fn resolve_cid(store: &CarBlockstore, arg: &str) -> Result<Cid, KuboError> {
    let (root, path) = ipfs_path(arg)?;
    if path.is_empty() {
        return Ok(root);
    }
    Ok(resolve(store, arg).await?.cid)
}

/// A source of body chunks: `Ok(None)` at the end (and after it).
trait Chunks: Send + 'static {
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, KuboError>> + Send;
}

/// A streamed response of `source`'s chunks. The first chunk is read before answering, so
/// what fails before it is a Kubo error; a later failure is logged and cuts the body.
async fn stream_response<C: Chunks>(
    content_type: &'static str,
    mut source: C,
) -> Result<Response, KuboError> {
    let Some(first) = source.next_chunk().await? else {
        return Ok(byte_stream(content_type, Body::empty()));
    };
    let state = (Some(first), Some(source));
    let stream = futures::stream::unfold(state, |(mut first, mut source)| async move {
        if let Some(chunk) = first.take() {
            return Some((Ok(chunk), (first, source)));
        }
        let result = source.as_mut()?.next_chunk().await;
        match result {
            Ok(Some(chunk)) => Some((Ok(chunk), (first, source))),
            Ok(None) => None,
            Err(e) => {
                let message = format!("{e:?}");
                tracing::warn!(error = %message, "Kubo RPC stream cut short");
                Some((Err(std::io::Error::other(message)), (first, None)))
            }
        }
    });
    Ok(byte_stream(content_type, Body::from_stream(stream)))
}

/// Drives `reader` until it has bytes (`Some`) or is done (`None`), one block at a time.
async fn next_file_bytes(
    store: &CarBlockstore,
    reader: &mut FileReader,
) -> Result<Option<Bytes>, KuboError> {
    loop {
        match reader.next().map_err(export_error)? {
            FileStep::Need(cid) => {
                let data = fetch_block(store, &cid).await?;
                reader.on_block(&cid, &data).map_err(export_error)?;
            }
            FileStep::Bytes(bytes) => return Ok(Some(bytes)),
            FileStep::Done => return Ok(None),
        }
    }
}

/// The size in bytes of the UnixFS file `cid` (a raw block, or a dag-pb `File`/`Raw` node),
/// read from its root block.
///
/// # Errors
/// Kubo's `this dag node is a directory` for a directory, `operation not supported` for
/// anything else that is not a file (500, as Kubo); [`fetch_block`]'s.
async fn file_size(store: &CarBlockstore, cid: &Cid, path: &str) -> Result<u64, KuboError> {
    let data = fetch_block(store, cid).await?;
    match cid.codec() {
        CODEC_RAW => return Ok(data.len() as u64),
        CODEC_DAG_PB => {}
        _ => return Err(KuboError::Failed("operation not supported".into())),
    }
    let invalid = |e: hydrant_unixfs::DagError| KuboError::Failed(format!("{path}: {e}"));
    let node = PbNode::decode(cid, &data).map_err(invalid)?;
    let ufs = UnixFsData::decode(cid, node.data.as_deref().unwrap_or_default()).map_err(invalid)?;
    match ufs.data_type {
        DataType::File => Ok(ufs.filesize),
        DataType::Raw => Ok(ufs
            .blocksizes
            .iter()
            .fold(ufs.data.len() as u64, |a, b| a.saturating_add(*b))),
        DataType::Directory | DataType::HamtShard => {
            Err(KuboError::Failed("this dag node is a directory".into()))
        }
        DataType::Symlink | DataType::Metadata => {
            Err(KuboError::Failed("operation not supported".into()))
        }
    }
}

/// `cat`'s body: the files one after the other.
struct CatChunks {
    store: Arc<CarBlockstore>,
    files: VecDeque<FileReader>,
}

impl Chunks for CatChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, KuboError> {
        while let Some(reader) = self.files.front_mut() {
            match next_file_bytes(&self.store, reader).await? {
                Some(bytes) => return Ok(Some(bytes)),
                None => {
                    self.files.pop_front();
                }
            }
        }
        Ok(None)
    }
}

/// `POST /api/v0/cat?arg=<ipfs-path>[&arg=...][&offset=N][&length=N]`: the bytes of the file
/// (of the files, one after the other, when `arg` repeats), from byte `offset` of the whole,
/// at most `length` bytes (`length=0`: nothing, as Kubo), streamed as `text/plain` with
/// `X-Stream-Output: 1` and `X-Content-Length` (the bytes that follow), as Kubo answers.
///
/// Each file's root block is read before the answer starts, so a missing root, a directory
/// (`this dag node is a directory`) or a symlink (`operation not supported`) is a 500 Kubo
/// error, a bad path a 400; a block missing further down cuts the stream.
pub(crate) async fn cat(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    params.arg("ipfs-path")?;
    let mut offset = params.number("offset")?.unwrap_or(0);
    let max = params.number("length")?;
    let store = state.services.blockstore.clone();
    let mut files = VecDeque::new();
    let mut total: u64 = 0;
    if max != Some(0) {
        for arg in params.all("arg") {
            let target = resolve(&store, arg).await?;
            let size = file_size(&store, &target.cid, &target.path).await?;
            if offset > size {
                offset -= size;
                continue;
            }
            let start = offset;
            offset = 0;
            let mut take = size - start;
            let done = max.is_some_and(|max| total + take >= max);
            if let Some(max) = max {
                take = take.min(max - total);
            }
            total += take;
            files.push_back(FileReader::new(target.cid, target.path, start, Some(take)));
            if done {
                break;
            }
        }
    }
    let mut response = stream_response("text/plain", CatChunks { store, files }).await?;
    response.headers_mut().insert(
        header::HeaderName::from_static("x-content-length"),
        HeaderValue::from(total),
    );
    Ok(response)
}

/// Kubo's `unixfs_pb.Data_DataType` numbers, as `ls` reports `Type`.
mod unixfs_type {
    /// A link not resolved (`resolve-type=false`, or not UnixFS).
    pub(super) const UNKNOWN: u8 = 0;
    /// `Directory` (Kubo reports HAMT shards and `Metadata` nodes as directories too).
    pub(super) const DIRECTORY: u8 = 1;
    /// `File` (also a raw block, and a dag-pb `Raw` node).
    pub(super) const FILE: u8 = 2;
    /// `Symlink`.
    pub(super) const SYMLINK: u8 = 4;
}

/// `ls`'s answer: one object per `arg`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LsOutput {
    objects: Vec<LsObject>,
}

/// One listed path.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LsObject {
    /// The argument as given.
    hash: String,
    links: Vec<LsLink>,
}

/// One entry, Kubo's `LsLink`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LsLink {
    /// Entry name ("" for the chunks of a file).
    pub(crate) name: String,
    /// The entry's CID.
    pub(crate) hash: String,
    /// File size in bytes (a symlink: its target's length; a directory, or unresolved: 0;
    /// a raw block: the link's `Tsize`).
    pub(crate) size: u64,
    /// [`unixfs_type`] number.
    pub(crate) r#type: u8,
    /// A symlink's target, else "".
    pub(crate) target: String,
    /// Go's `os.FileMode` of the UnixFS 1.5 `mode` (permission bits, `ModeDir` 1<<31,
    /// `ModeSymlink` 1<<27, setuid 1<<23, setgid 1<<22, sticky 1<<20), 0 when absent.
    pub(crate) mode: u32,
    /// The UnixFS 1.5 `mtime` as Go's `time.Time` JSON (RFC 3339, UTC, fractional seconds
    /// without trailing zeros), `0001-01-01T00:00:00Z` when absent.
    pub(crate) mod_time: String,
}

/// Go's zero `time.Time` in JSON.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// boxo's `FSNode.Mode()`: the UnixFS `mode`'s low 12 bits as a Go `os.FileMode`, with the
/// directory or symlink bit; 0 when no permission bit is set.
pub(crate) fn go_file_mode(mode: Option<u32>, data_type: DataType) -> u32 {
    let perms = mode.unwrap_or(0) & 0xFFF;
    if perms == 0 {
        return 0;
    }
    let mut m = (perms & 0x1FF) | ((perms & 0xC00) << 12) | ((perms & 0x200) << 11);
    match data_type {
        DataType::Directory | DataType::HamtShard => m |= 1 << 31,
        DataType::Symlink => m |= 1 << 27,
        _ => {}
    }
    m
}

/// boxo's `FSNode.ModTime()` as Go's `time.Time` JSON (`RFC3339Nano`, UTC): absent, or
/// nanoseconds out of 1..=999 999 999, is the zero time (a 0 nanosecond field is read as
/// absent, as writers leave it out).
pub(crate) fn go_mod_time(mtime: Option<(i64, u32)>) -> String {
    let Some((secs, nanos)) = mtime else {
        return GO_ZERO_TIME.into();
    };
    if nanos > 999_999_999 {
        return GO_ZERO_TIME.into();
    }
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return GO_ZERO_TIME.into();
    };
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Kubo's `processLink`: what `ls` says of the link `name` → `cid` (`tsize` its `Tsize`),
/// reading the child's root block when `resolve` (and it is dag-pb).
async fn ls_link(
    store: &CarBlockstore,
    name: String,
    cid: Cid,
    tsize: Option<u64>,
    resolve: bool,
) -> Result<LsLink, KuboError> {
    let mut link = LsLink {
        name,
        hash: cid.to_string(),
        size: 0,
        r#type: unixfs_type::UNKNOWN,
        target: String::new(),
        mode: 0,
        mod_time: GO_ZERO_TIME.into(),
    };
    match cid.codec() {
        CODEC_RAW => {
            link.r#type = unixfs_type::FILE;
            link.size = tsize.unwrap_or(0);
        }
        CODEC_DAG_PB if resolve => {
            let data = fetch_block(store, &cid).await?;
            let invalid = |e: hydrant_unixfs::DagError| KuboError::Failed(e.to_string());
            let node = PbNode::decode(&cid, &data).map_err(invalid)?;
            let ufs = UnixFsData::decode(&cid, node.data.as_deref().unwrap_or_default())
                .map_err(invalid)?;
            match ufs.data_type {
                DataType::File => {
                    link.r#type = unixfs_type::FILE;
                    link.size = ufs.filesize;
                }
                DataType::Raw => {
                    link.r#type = unixfs_type::FILE;
                    link.size = ufs.filesize;
                }
                DataType::Directory | DataType::HamtShard | DataType::Metadata => {
                    link.r#type = unixfs_type::DIRECTORY;
                }
                DataType::Symlink => {
                    link.r#type = unixfs_type::SYMLINK;
                    link.size = ufs.data.len() as u64;
                    link.target = String::from_utf8_lossy(&ufs.data).into_owned();
                }
            }
            link.mode = go_file_mode(ufs.mode, ufs.data_type);
            link.mod_time = go_mod_time(ufs.mtime);
        }
        _ => {}
    }
    Ok(link)
}

/// The links `ls` shows for one path: a directory's entries (flat or HAMT, every shard,
/// sorted by name), else the node's own links (a multi-block file's chunks, named ""), none
/// for a raw block.
async fn ls_path(
    store: &CarBlockstore,
    arg: &str,
    resolve_children: bool,
) -> Result<Vec<LsLink>, KuboError> {
    let target = resolve(store, arg).await?;
    let cid = target.cid;
    // Read first, as Kubo does: a missing block is an error even for a raw CID.
    let data = fetch_block(store, &cid).await?;
    match cid.codec() {
        CODEC_RAW => return Ok(Vec::new()),
        CODEC_DAG_PB => {}
        codec => {
            return Err(KuboError::Failed(format!(
                "{}: {cid} is not UnixFS (codec 0x{codec:x}): use dag/get",
                target.path
            )));
        }
    }
    let invalid = |e: hydrant_unixfs::DagError| KuboError::Failed(format!("{}: {e}", target.path));
    let node = PbNode::decode(&cid, &data).map_err(invalid)?;
    let ufs =
        UnixFsData::decode(&cid, node.data.as_deref().unwrap_or_default()).map_err(invalid)?;
    let mut links = Vec::new();
    if matches!(ufs.data_type, DataType::Directory | DataType::HamtShard) {
        let mut lister = DirLister::new(cid, target.path, false);
        while let Some(wanted) = lister.next_wanted().map_err(export_error)? {
            if wanted == cid {
                lister.on_block(&cid, &data).map_err(export_error)?;
            } else {
                let block = fetch_block(store, &wanted).await?;
                lister.on_block(&wanted, &block).map_err(export_error)?;
            }
        }
        for entry in lister.finish().map_err(export_error)? {
            links.push(ls_link(store, entry.name, entry.cid, entry.tsize, resolve_children).await?);
        }
    } else {
        for link in node.links {
            let name = link.name.unwrap_or_default();
            links.push(ls_link(store, name, link.cid, link.tsize, resolve_children).await?);
        }
    }
    Ok(links)
}

/// `POST /api/v0/ls?arg=<ipfs-path>[&arg=...]`: the entries of each directory,
/// `{"Objects": [{"Hash": "<arg as given>", "Links": [{"Name", "Hash", "Size", "Type",
/// "Target", "Mode", "ModTime"}]}]}` ([`LsLink`]), entries sorted by name, as Kubo answers.
///
/// A file's object lists the file's own links (its chunks, named ""), none for a one-block
/// file (clients then show the file itself). Options: `resolve-type` and `size` (default
/// true; both false: children are not read, dag-pb entries have `Type` 0 and `Size` 0);
/// `stream`: one `{"Objects": [{"Hash", "Links": [one link]}]}` line per entry instead
/// (`X-Chunked-Output`). `headers` and `long` only change Kubo's text output and are ignored.
///
/// Errors: 400 for a bad path; 500 for a missing block (Kubo's message), a missing entry, an
/// invalid node.
pub(crate) async fn ls(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    params.arg("ipfs-path")?;
    let resolve_children = params.flag("resolve-type", true)? || params.flag("size", true)?;
    let stream = params.flag("stream", false)?;
    let store = &state.services.blockstore;
    let mut objects = Vec::new();
    for arg in params.all("arg") {
        let links = ls_path(store, arg, resolve_children).await?;
        objects.push(LsObject {
            hash: arg.to_owned(),
            links,
        });
    }
    if stream {
        let lines = objects.into_iter().flat_map(|object| {
            let hash = object.hash;
            object.links.into_iter().map(move |link| LsOutput {
                objects: vec![LsObject {
                    hash: hash.clone(),
                    links: vec![link],
                }],
            })
        });
        Ok(ndjson(lines))
    } else {
        Ok(json(&LsOutput { objects }))
    }
}

/// The name Kubo gives `get`'s top entry: the last component of the cleaned path (Go's
/// `path.Clean`, then `path.Split`, of `/ipfs/<arg>`), or the CID for a bare CID. Never `.`
/// or `..`: a component climbing above the root is dropped (the resolver refuses such paths).
pub(crate) fn get_name(arg: &str) -> String {
    let rest = arg.strip_prefix("/ipfs/").unwrap_or(arg);
    let mut clean: Vec<&str> = Vec::new();
    for segment in rest.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                clean.pop();
            }
            s => clean.push(s),
        }
    }
    clean.last().copied().unwrap_or(rest).to_owned()
}

/// `get`'s body: the gateway's tar of a UnixFS tree ([`hydrant_gateway::TarBody`]).
struct TarChunks(hydrant_gateway::TarBody);

impl Chunks for TarChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, KuboError> {
        self.0
            .next_bytes()
            .await
            .map_err(|e| KuboError::Failed(e.to_string()))
    }
}

/// Seconds since the Unix epoch now (Kubo's mtime of a node without one).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `POST /api/v0/get?arg=<ipfs-path>`: the file or directory tree as a tar stream
/// (`application/x-tar`, `X-Stream-Output: 1`), as Kubo answers: the top entry named by the
/// path's last component (the CID for a bare CID), then, depth first, each directory before
/// its contents (flat directories by name, HAMTs in shard order), files (type `0`, their
/// bytes streamed), symlinks (type `2`); mode the UnixFS `mode` or 0755/0644/0777, mtime the
/// UnixFS `mtime` or now; two zero blocks at the end. Headers are ustar, with PAX records
/// only where ustar cannot hold a value.
///
/// Options: `output`, `archive`, `compression-level` and `progress` only change Kubo's CLI
/// side and are accepted; `compress=true` (gzip) is refused (400).
///
/// Errors: 400 for a bad path; 500 for a missing root, entry or block before the first byte;
/// later, a cut stream.
pub(crate) async fn get(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let arg = params.arg("ipfs-path")?;
    if params.flag("compress", false)? {
        return Err(KuboError::Client(
            "option \"compress\" is not supported by Hydrant: get answers an uncompressed tar"
                .into(),
        ));
    }
    let store = state.services.blockstore.clone();
    let target = resolve(&store, arg).await?;
    let root_data = fetch_block(&store, &target.cid).await?;
    let source = TarChunks(hydrant_gateway::TarBody::new(
        store,
        target.cid,
        root_data,
        get_name(arg),
        now_secs(),
    ));
    stream_response("application/x-tar", source).await
}

/// `POST /api/v0/block/get?arg=<cid>`: the raw bytes of the block (`text/plain`,
/// `X-Stream-Output: 1`), as Kubo answers. A path (`CID/a/b`) names the block it resolves
/// to. Missing: 500 `block was not found locally (offline): ipld: could not find <cid>`.
pub(crate) async fn block_get(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let arg = params.arg("cid")?;
    let store = &state.services.blockstore;
    let cid = resolve_cid(store, arg).await?;
    let data = fetch_block(store, &cid).await?;
    Ok(byte_stream("text/plain", Body::from(data)))
}

/// `block/stat`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BlockStat {
    key: String,
    size: u64,
}

/// `POST /api/v0/block/stat?arg=<cid>`: `{"Key": "<cid>", "Size": <bytes>}`, as Kubo
/// answers (`Key` the CID as its string form: CIDv0 stays `Qm…`). Missing: as `block/get`.
pub(crate) async fn block_stat(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let arg = params.arg("cid")?;
    let store = &state.services.blockstore;
    let cid = resolve_cid(store, arg).await?;
    let data = fetch_block(store, &cid).await?;
    Ok(json(&BlockStat {
        key: cid.to_string(),
        size: data.len() as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubo_get_names_the_top_entry_as_kubo() {
        assert_eq!(get_name("QmCid"), "QmCid");
        assert_eq!(get_name("/ipfs/QmCid"), "QmCid");
        assert_eq!(get_name("/ipfs/QmCid/a/b/"), "b");
        assert_eq!(get_name("QmCid/a"), "a");
        assert_eq!(get_name("QmCid/a/./b/.."), "a");
    }

    #[test]
    fn kubo_modes_and_times_as_go() {
        assert_eq!(go_file_mode(None, DataType::File), 0);
        assert_eq!(go_file_mode(Some(0o644), DataType::File), 0o644);
        assert_eq!(
            go_file_mode(Some(0o755), DataType::Directory),
            0o755 | (1 << 31)
        );
        assert_eq!(
            go_file_mode(Some(0o4755), DataType::File),
            0o755 | (1 << 23)
        );
        assert_eq!(go_mod_time(None), GO_ZERO_TIME);
        assert_eq!(go_mod_time(Some((0, 0))), "1970-01-01T00:00:00Z");
        assert_eq!(
            go_mod_time(Some((1_700_000_000, 500_000_000))),
            "2023-11-14T22:13:20.5Z"
        );
    }
}
