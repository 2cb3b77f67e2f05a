//! The Kubo RPC commands that take uploads: `add`, `block/put` and `dag/import`. Each reads a
//! `multipart/form-data` body as Kubo's clients send it (one part per file, directory or
//! symlink, its path URL-encoded in `filename`) and stores what it makes through the ingest
//! pipeline, as `PUT /api/v1/cars` does: verified, indexed, atomic, announced, roots pinned.
//!
//! **`add`** builds the UnixFS DAG with the importer on a blocking thread, fed through a
//! bounded channel (the async side reads the upload, the thread hashes); the blocks are spilled
//! to an unnamed file in the repository ([`CarSpill`]) and ingested as one CAR once the roots
//! are known. Its answer comes only then, all at once: an error (a cut body, a bad path, a
//! failed ingest) is a plain Kubo error with nothing stored or pinned, never a stream that stops
//! half-way. Kubo's defaults apply (the `unixfs-v0-2015` profile: CIDv0, 256 KiB chunks, dag-pb
//! leaves), so existing tools get the CIDs they expect.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use cid::Cid;
use futures::TryStreamExt as _;
use hydrant_unixfs::importer::{
    DirectoryBuilder, FileImporter, ImportProfile, Imported, Metadata, ProfileOverrides,
    symlink_block,
};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{KuboError, Params, json, ndjson};
use crate::http::api::{idle_limited, ingested};
use crate::http::state::ApiState;
use crate::stores::spill::CarSpill;

/// Most files, directories and symlinks one `add` takes: the answer lists each, and the
/// directory tree is held until the end.
pub(crate) const MAX_ADD_ENTRIES: usize = 250_000;

/// Longest symlink target, bytes (Linux's `PATH_MAX`).
const MAX_SYMLINK_TARGET: usize = 4096;

/// Largest block `block/put` takes without `allow-big-block`, bytes (Kubo's 1 MiB).
const MAX_BLOCK_SIZE: usize = 1 << 20;

/// Upload chunks waiting for the import thread.
const IMPORT_QUEUE: usize = 16;

/// `POST /api/v0/add`: files and directories in, one answer line per entry
/// (`{"Name", "Hash", "Size"}`, `Size` the cumulative DAG size as a string, as Kubo), files
/// first, then directories deepest first, the root (or the wrapping directory, `Name` "") last.
/// With `progress`, a `{"Name", "Bytes"}` line precedes each file's.
///
/// Options: `cid-version`, `raw-leaves`, `chunker` (`size-N`), `hash`, `wrap-with-directory`,
/// `only-hash`, `pin` (default true), `progress`; `quiet`, `quieter`, `silent`,
/// `stream-channels` and the like are accepted and change nothing here (Kubo's client filters
/// the lines). `trickle`, `nocopy`, `fscache`, `inline` and `to-files` are refused by name.
pub(crate) async fn add(
    State(state): State<ApiState>,
    params: Params,
    request: Request,
) -> Result<Response, KuboError> {
    let mut multipart = multipart(&state, request)?;
    let result = add_files(&state, &params, &mut multipart).await;
    drain_on_error(result, &mut multipart).await
}

async fn add_files(
    state: &ApiState,
    params: &Params,
    multipart: &mut multer::Multipart<'static>,
) -> Result<Response, KuboError> {
    let options = AddOptions::parse(params)?;
    let spill =
        if options.only_hash {
            None
        } else {
            Some(CarSpill::create_in(&state.spill_dir).map_err(|e| {
                KuboError::internal("cannot create a temporary file for the upload", e)
            })?)
        };
    let worker = AddWorker {
        profile: options.profile,
        progress: options.progress,
        wrap: options.wrap,
        spill,
        tree: Tree::default(),
        events: Vec::new(),
        entries: 0,
    };
    let (tx, rx) = mpsc::channel(IMPORT_QUEUE);
    let worker = tokio::task::spawn_blocking(move || worker.run(rx));
    let read = read_parts(multipart, tx, state.max_upload_bytes).await;
    let imported = worker
        .await
        .map_err(|e| KuboError::internal("the import thread failed", e))?;
    // A read error first: the worker then only saw the upload stop.
    read?;
    let Outcome {
        events,
        roots,
        spill,
    } = imported?;
    if let Some(spill) = spill {
        let car = spill
            .into_car(&roots)
            .map_err(|e| KuboError::internal("cannot read back the temporary file", e))?;
        let ticket = state.services.ingest_stats.start();
        let result = state
            .services
            .ingester
            .ingest(car, Some(ticket.progress()))
            .await;
        ingested(state, ticket, result, options.pin).await?;
    }
    Ok(ndjson(events))
}

/// Hands every part to the import thread. When the thread stops on an error, the rest of the
/// upload is still read (and dropped), so that the client, which sends its whole body before
/// it reads the answer, gets the error rather than a broken pipe.
async fn read_parts(
    multipart: &mut multer::Multipart<'static>,
    tx: mpsc::Sender<Part>,
    limit: u64,
) -> Result<(), KuboError> {
    let mut importing = true;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let begin = Part::Begin {
            path: part_path(&field)?,
            kind: PartKind::of(&field),
        };
        importing = importing && tx.send(begin).await.is_ok();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
            importing = importing && tx.send(Part::Data(chunk)).await.is_ok();
        }
        importing = importing && tx.send(Part::End).await.is_ok();
    }
    if importing {
        let _ = tx.send(Part::Finish).await;
    }
    Ok(())
}

/// Passes `result` on; when it is an error, first reads and drops what is left of the upload
/// (at most `api.max_upload_bytes`, and not past a stall or a malformed part), so that the
/// client gets the error answer rather than a broken pipe.
async fn drain_on_error(
    result: Result<Response, KuboError>,
    multipart: &mut multer::Multipart<'static>,
) -> Result<Response, KuboError> {
    if result.is_err() {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
    result
}

/// The options of one `add`.
struct AddOptions {
    profile: ImportProfile,
    wrap: bool,
    only_hash: bool,
    pin: bool,
    progress: bool,
}

impl AddOptions {
    fn parse(params: &Params) -> Result<Self, KuboError> {
        for unsupported in ["trickle", "nocopy", "fscache", "inline"] {
            if params.flag(unsupported, false)? {
                return Err(KuboError::Client(format!(
                    "option {unsupported:?} is not supported by Hydrant"
                )));
            }
        }
        if params.get("to-files").is_some() {
            return Err(KuboError::Client(
                "option \"to-files\" is not supported by Hydrant (it has no MFS)".into(),
            ));
        }
        let cid_version = params
            .number("cid-version")?
            .map(|v| {
                u8::try_from(v)
                    .ok()
                    .filter(|v| *v <= 1)
                    .ok_or_else(|| KuboError::Client(format!("unknown CID version: {v}")))
            })
            .transpose()?;
        let overrides = ProfileOverrides {
            cid_version,
            raw_leaves: params.optional_flag("raw-leaves")?,
            chunker: params.get("chunker").map(str::to_owned),
            max_links: None,
            hash: params.get("hash").map(str::to_owned),
        };
        let profile = ImportProfile::unixfs_v0_2015()
            .with_overrides(&overrides)
            .map_err(|e| KuboError::Client(e.to_string()))?;
        Ok(AddOptions {
            profile,
            wrap: params.flag("wrap-with-directory", false)?,
            only_hash: params.flag("only-hash", false)?,
            pin: params.flag("pin", true)?,
            progress: params.flag("progress", false)?,
        })
    }
}

/// What the reading side hands the import thread.
enum Part {
    /// A new entry; its bytes follow.
    Begin {
        path: String,
        kind: PartKind,
    },
    Data(Bytes),
    /// The entry's bytes are done.
    End,
    /// The upload is complete: no `Finish` means it stopped early.
    Finish,
}

#[derive(Clone, Copy)]
enum PartKind {
    File,
    Directory,
    Symlink,
}

impl PartKind {
    /// By the part's `Content-Type`, as Kubo's multipart reader decides.
    fn of(field: &multer::Field<'_>) -> Self {
        match field.content_type().map(|m| m.essence_str()) {
            Some("application/x-directory") => Self::Directory,
            Some("application/symlink") => Self::Symlink,
            _ => Self::File,
        }
    }
}

/// One line of `add`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AddEvent {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
}

/// What the import thread made.
struct Outcome {
    events: Vec<AddEvent>,
    roots: Vec<Cid>,
    spill: Option<CarSpill>,
}

/// The import thread: builds the DAG of each entry as it arrives and the directories at the end.
struct AddWorker {
    profile: ImportProfile,
    progress: bool,
    wrap: bool,
    spill: Option<CarSpill>,
    tree: Tree,
    events: Vec<AddEvent>,
    entries: usize,
}

fn cut_short() -> KuboError {
    KuboError::Client("the upload ended in the middle of a part".into())
}

impl AddWorker {
    fn run(mut self, mut rx: mpsc::Receiver<Part>) -> Result<Outcome, KuboError> {
        loop {
            match rx.blocking_recv() {
                Some(Part::Begin { path, kind }) => {
                    self.entries += 1;
                    if self.entries > MAX_ADD_ENTRIES {
                        return Err(KuboError::Client(format!(
                            "more than {MAX_ADD_ENTRIES} files and directories in one add; \
                             split the upload"
                        )));
                    }
                    self.entry(&mut rx, path, kind)?;
                }
                Some(Part::Finish) => return self.finish(),
                Some(Part::Data(_) | Part::End) => {
                    return Err(KuboError::internal(
                        "the import thread",
                        "data outside a part",
                    ));
                }
                None => return Err(cut_short()),
            }
        }
    }

    fn entry(
        &mut self,
        rx: &mut mpsc::Receiver<Part>,
        path: String,
        kind: PartKind,
    ) -> Result<(), KuboError> {
        let path = clean_path(&path)?;
        match kind {
            PartKind::Directory => {
                while let Part::Data(_) = rx.blocking_recv().ok_or_else(cut_short)? {}
                if path.is_empty() {
                    return Err(KuboError::Client("a directory part has no name".into()));
                }
                self.tree.directory(&path)
            }
            PartKind::File => {
                let mut file = FileImporter::new(&self.profile, Metadata::default())
                    .map_err(|e| KuboError::Client(e.to_string()))?;
                let mut bytes = 0;
                loop {
                    match rx.blocking_recv().ok_or_else(cut_short)? {
                        Part::Data(chunk) => {
                            bytes += chunk.len() as u64;
                            let blocks = file.push(&chunk);
                            self.spill(blocks)?;
                        }
                        Part::End => break,
                        _ => return Err(cut_short()),
                    }
                }
                let imported = file.finish();
                // Kubo names a file sent without a name by its CID.
                let path = if path.is_empty() {
                    imported.cid.to_string()
                } else {
                    path
                };
                if self.progress {
                    self.events.push(AddEvent {
                        name: path.clone(),
                        hash: None,
                        size: None,
                        bytes: Some(bytes),
                    });
                }
                let (cid, size) = self.emit(imported, path.clone())?;
                self.tree.place(&path, cid, size)
            }
            PartKind::Symlink => {
                let mut target = Vec::new();
                loop {
                    match rx.blocking_recv().ok_or_else(cut_short)? {
                        Part::Data(chunk) => {
                            target.extend_from_slice(&chunk);
                            if target.len() > MAX_SYMLINK_TARGET {
                                return Err(KuboError::Client(format!(
                                    "{path}: the symlink's target is longer than \
                                     {MAX_SYMLINK_TARGET} bytes"
                                )));
                            }
                        }
                        Part::End => break,
                        _ => return Err(cut_short()),
                    }
                }
                let target = String::from_utf8(target).map_err(|_| {
                    KuboError::Client(format!("{path}: the symlink's target is not UTF-8"))
                })?;
                let imported = symlink_block(&self.profile, &target, Metadata::default())
                    .map_err(|e| KuboError::Client(format!("{path}: {e}")))?;
                let (cid, size) = self.emit(imported, path.clone())?;
                self.tree.place(&path, cid, size)
            }
        }
    }

    fn spill(&mut self, blocks: Vec<hydrant_unixfs::importer::Block>) -> Result<(), KuboError> {
        match &mut self.spill {
            Some(spill) => spill
                .write(blocks)
                .map_err(|e| KuboError::internal("cannot write the temporary file", e)),
            None => Ok(()),
        }
    }

    /// Spills the entry's last blocks and records its answer line.
    fn emit(&mut self, imported: Imported, name: String) -> Result<(Cid, u64), KuboError> {
        let Imported { cid, size, blocks } = imported;
        self.spill(blocks)?;
        self.events.push(AddEvent {
            name,
            hash: Some(cid.to_string()),
            size: Some(size.to_string()),
            bytes: None,
        });
        Ok((cid, size))
    }

    /// Builds the directories, deepest first, then the wrapping directory when asked.
    fn finish(mut self) -> Result<Outcome, KuboError> {
        let mut paths: Vec<String> = self
            .tree
            .dirs
            .keys()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect();
        // Stable: paths of one depth stay in name order.
        paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        for path in paths {
            let entries = self.tree.dirs.remove(&path).unwrap_or_default();
            let imported = self.directory(entries)?;
            let (cid, size) = self.emit(imported, path.clone())?;
            let (parent, name) = split_parent(&path);
            self.tree
                .dirs
                .entry(parent.to_owned())
                .or_default()
                .insert(name.to_owned(), (cid, size));
        }
        let top = self.tree.dirs.remove("").unwrap_or_default();
        if top.is_empty() {
            return Err(KuboError::Client("the request holds no file to add".into()));
        }
        let roots = if self.wrap {
            let imported = self.directory(top)?;
            vec![self.emit(imported, String::new())?.0]
        } else {
            top.values().map(|(cid, _)| *cid).collect()
        };
        Ok(Outcome {
            events: self.events,
            roots,
            spill: self.spill,
        })
    }

    fn directory(&self, entries: BTreeMap<String, (Cid, u64)>) -> Result<Imported, KuboError> {
        let client = |e: hydrant_unixfs::importer::ImportError| KuboError::Client(e.to_string());
        let mut dir = DirectoryBuilder::new(&self.profile, Metadata::default()).map_err(client)?;
        for (name, (cid, size)) in entries {
            dir.add(&name, cid, size).map_err(client)?;
        }
        dir.finish().map_err(client)
    }
}

/// The directories of an upload: for each path (`""` is the top level), its entries by name.
/// Directories are made when a part names them or a path goes through them, so parts may come
/// in any order.
#[derive(Default)]
struct Tree {
    dirs: BTreeMap<String, BTreeMap<String, (Cid, u64)>>,
}

impl Tree {
    /// Makes directory `path` and every directory above it.
    fn directory(&mut self, path: &str) -> Result<(), KuboError> {
        if self.dirs.contains_key(path) {
            return Ok(());
        }
        let (parent, name) = split_parent(path);
        if !parent.is_empty() {
            self.directory(parent)?;
        }
        if self.dirs.get(parent).is_some_and(|d| d.contains_key(name)) {
            return Err(duplicate(path));
        }
        self.dirs.insert(path.to_owned(), BTreeMap::new());
        Ok(())
    }

    /// Records the file or symlink `path` in its directory.
    fn place(&mut self, path: &str, cid: Cid, size: u64) -> Result<(), KuboError> {
        if self.dirs.contains_key(path) {
            return Err(duplicate(path));
        }
        let (parent, name) = split_parent(path);
        if !parent.is_empty() {
            self.directory(parent)?;
        }
        let entries = self.dirs.entry(parent.to_owned()).or_default();
        if entries.insert(name.to_owned(), (cid, size)).is_some() {
            return Err(duplicate(path));
        }
        Ok(())
    }
}

fn duplicate(path: &str) -> KuboError {
    KuboError::Client(format!("{path:?} is in the upload twice"))
}

/// `a/b/c` as (`a/b`, `c`); `c` as (``, `c`).
fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// A part's path without leading or trailing `/`; `.`, `..` and empty components are refused.
fn clean_path(path: &str) -> Result<String, KuboError> {
    let path = path.trim_matches('/');
    if !path.is_empty()
        && path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
    {
        return Err(KuboError::Client(format!(
            "invalid path {path:?} in the upload: empty, `.` or `..` components"
        )));
    }
    Ok(path.to_owned())
}

/// The part's path: its `filename`, URL-decoded as Kubo decodes it (Go's `url.QueryUnescape`:
/// `%XX` escapes, `+` for a space).
fn part_path(field: &multer::Field<'_>) -> Result<String, KuboError> {
    let raw = field.file_name().or(field.name()).unwrap_or_default();
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| KuboError::Client(format!("the file name {raw:?} is not UTF-8")))
}

/// The request's `multipart/form-data` body, at most `api.max_upload_bytes`, cut when it stalls
/// for `api.upload_idle_timeout_secs`.
pub(crate) fn multipart(
    state: &ApiState,
    request: Request,
) -> Result<multer::Multipart<'static>, KuboError> {
    let boundary = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            KuboError::Client(
                "expected a multipart/form-data body with a boundary, as Kubo's clients send files"
                    .into(),
            )
        })?;
    let body = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let body = Box::pin(idle_limited(body, state.upload_idle_timeout));
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(state.max_upload_bytes));
    Ok(multer::Multipart::with_constraints(
        body,
        boundary,
        constraints,
    ))
}

pub(crate) fn multipart_error(e: multer::Error, limit: u64) -> KuboError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => KuboError::TooLarge(limit),
        multer::Error::StreamReadFailed(e) => {
            KuboError::Client(format!("reading the upload failed: {e}"))
        }
        e => KuboError::Client(format!("the multipart body is malformed or cut short: {e}")),
    }
}

/// A part's bytes as an `std::io` stream: the ingest pipeline reads it. Past the upload limit
/// the error is `FileTooLarge`, which the ingest answers with 413.
fn part_reader(field: multer::Field<'static>) -> impl tokio::io::AsyncRead + Unpin + Send {
    tokio_util::io::StreamReader::new(field.map_err(|e| match e {
        multer::Error::StreamSizeExceeded { .. } => {
            std::io::Error::new(std::io::ErrorKind::FileTooLarge, "upload too large")
        }
        e => std::io::Error::other(e),
    }))
}

/// `POST /api/v0/dag/import`: each file part is a CAR (v1 or v2), ingested as it streams in;
/// answers `{"Root": {"Cid": {"/": CID}, "PinErrorMsg": ""}}` per root of every CAR and, with
/// `stats`, `{"Stats": {"BlockCount", "BlockBytesCount"}}`. Roots are pinned unless
/// `pin-roots=false`. Each CAR is atomic on its own: when a later part fails, the CARs before it
/// stay stored.
pub(crate) async fn dag_import(
    State(state): State<ApiState>,
    params: Params,
    request: Request,
) -> Result<Response, KuboError> {
    let mut multipart = multipart(&state, request)?;
    let result = import_cars(&state, &params, &mut multipart).await;
    drain_on_error(result, &mut multipart).await
}

async fn import_cars(
    state: &ApiState,
    params: &Params,
    multipart: &mut multer::Multipart<'static>,
) -> Result<Response, KuboError> {
    let pin = params.flag("pin-roots", true)?;
    let stats = params.flag("stats", false)?;
    let limit = state.max_upload_bytes;
    let mut lines = Vec::new();
    let (mut blocks, mut block_bytes) = (0u64, 0u64);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let ticket = state.services.ingest_stats.start();
        let result = state
            .services
            .ingester
            .ingest(part_reader(field), Some(ticket.progress()))
            .await;
        let summary = ingested(state, ticket, result, pin).await?;
        blocks += summary["blocks"].as_u64().unwrap_or_default();
        block_bytes += summary["block_bytes"].as_u64().unwrap_or_default();
        for root in summary["roots"].as_array().into_iter().flatten() {
            lines.push(serde_json::json!({
                "Root": { "Cid": { "/": root }, "PinErrorMsg": "" }
            }));
        }
    }
    if stats {
        lines.push(serde_json::json!({
            "Stats": { "BlockCount": blocks, "BlockBytesCount": block_bytes }
        }));
    }
    Ok(ndjson(lines))
}

/// `POST /api/v0/block/put`: each file part is one block, hashed with `mhtype` (default
/// sha2-256) and given codec `cid-codec` (default `raw`; the older `format` option is also
/// read: `v0` or `protobuf` for CIDv0 dag-pb, `cbor` for dag-cbor). Answers `{"Key", "Size"}`
/// per block. The blocks are stored as one CAR; pinned only with `pin=true` (Kubo's default is
/// false). Blocks over 1 MiB are refused unless `allow-big-block`.
pub(crate) async fn block_put(
    State(state): State<ApiState>,
    params: Params,
    request: Request,
) -> Result<Response, KuboError> {
    let mut multipart = multipart(&state, request)?;
    let result = put_blocks(&state, &params, &mut multipart).await;
    drain_on_error(result, &mut multipart).await
}

async fn put_blocks(
    state: &ApiState,
    params: &Params,
    multipart: &mut multer::Multipart<'static>,
) -> Result<Response, KuboError> {
    let format = BlockFormat::parse(params)?;
    let pin = params.flag("pin", false)?;
    let max_block = if params.flag("allow-big-block", false)? {
        usize::try_from(state.max_upload_bytes).unwrap_or(usize::MAX)
    } else {
        MAX_BLOCK_SIZE
    };
    let limit = state.max_upload_bytes;
    let mut blocks = Vec::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
            data.extend_from_slice(&chunk);
            if data.len() > max_block {
                return Err(KuboError::Failed(format!(
                    "produced block is over {max_block} bytes: big blocks can't be exchanged \
                     with other peers. consider using UnixFS for automatic chunking of bigger \
                     files, or pass --allow-big-block to override"
                )));
            }
        }
        let cid = format.cid(&data)?;
        blocks.push((cid, data));
    }
    if blocks.is_empty() {
        return Err(KuboError::Client("argument \"data\" is required".into()));
    }
    let roots: Vec<Cid> = blocks.iter().map(|(cid, _)| *cid).collect();
    let mut car = hydrant_car::encode_v1_header(&roots);
    for (cid, data) in &blocks {
        hydrant_car::encode_section(cid, data, &mut car);
    }
    let ticket = state.services.ingest_stats.start();
    let result = state
        .services
        .ingester
        .ingest(std::io::Cursor::new(car), Some(ticket.progress()))
        .await;
    ingested(state, ticket, result, pin).await?;
    let answers: Vec<_> = blocks
        .iter()
        .map(|(cid, data)| serde_json::json!({ "Key": cid.to_string(), "Size": data.len() }))
        .collect();
    Ok(match answers.as_slice() {
        [one] => json(one),
        _ => ndjson(answers),
    })
}

/// How `block/put` makes a block's CID.
struct BlockFormat {
    version: u8,
    codec: u64,
    hash: u64,
    len: Option<usize>,
}

impl BlockFormat {
    fn parse(params: &Params) -> Result<Self, KuboError> {
        let hash = match params.get("mhtype").unwrap_or("sha2-256") {
            "sha2-256" => 0x12,
            "sha2-512" => 0x13,
            "sha3-256" => 0x16,
            "sha3-512" => 0x14,
            "blake2b-256" => 0xb220,
            "blake2b-512" => 0xb240,
            "blake3" => 0x1e,
            "identity" => 0x00,
            other => {
                return Err(KuboError::Client(format!(
                    "mhtype {other:?} is not supported: use sha2-256, sha2-512, sha3-256, \
                     sha3-512, blake2b-256, blake2b-512, blake3 or identity"
                )));
            }
        };
        let len = match params.get("mhlen") {
            None | Some("-1") => None,
            Some(_) => params
                .number("mhlen")?
                .and_then(|n| usize::try_from(n).ok()),
        };
        let (version, codec) = match (params.get("format"), params.get("cid-codec")) {
            (Some("v0"), _) => (0, 0x70),
            (Some("protobuf" | "dag-pb"), _) if hash == 0x12 => (0, 0x70),
            (Some("protobuf" | "dag-pb"), _) => (1, 0x70),
            (Some("cbor" | "dag-cbor"), _) => (1, 0x71),
            (Some("raw"), _) | (None, None) => (1, 0x55),
            (Some(other), _) => {
                return Err(KuboError::Client(format!("unknown format {other:?}")));
            }
            (None, Some(name)) => (1, codec_code(name)?),
        };
        Ok(BlockFormat {
            version,
            codec,
            hash,
            len,
        })
    }

    fn cid(&self, data: &[u8]) -> Result<Cid, KuboError> {
        let len = self.len.unwrap_or(match self.hash {
            0x00 => data.len(),
            0x13 | 0x14 | 0xb240 => 64,
            _ => 32,
        });
        let digest = hydrant_blocks::digest(self.hash, len, data)
            .map_err(|e| KuboError::Client(format!("cannot hash the block: {e}")))?;
        if self.version == 0 {
            Cid::new_v0(digest).map_err(|e| KuboError::Client(format!("CIDv0: {e}")))
        } else {
            Ok(Cid::new_v1(self.codec, digest))
        }
    }
}

/// The multicodec code of a codec `block/put` takes by name.
fn codec_code(name: &str) -> Result<u64, KuboError> {
    Ok(match name {
        "raw" => 0x55,
        "dag-pb" => 0x70,
        "dag-cbor" => 0x71,
        "dag-json" => 0x0129,
        "json" => 0x0200,
        "cbor" => 0x51,
        "libp2p-key" => 0x72,
        "git-raw" => 0x78,
        other => {
            return Err(KuboError::Client(format!(
                "cid-codec {other:?} is not supported: use raw, dag-pb, dag-cbor, dag-json, \
                 json, cbor, libp2p-key or git-raw"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        let digest = hydrant_blocks::digest(0x12, 32, &[n]).unwrap();
        Cid::new_v1(0x55, digest)
    }

    #[test]
    fn tree_makes_parents_and_refuses_duplicates() {
        let mut tree = Tree::default();
        tree.place("a/b/c.txt", cid(1), 1).unwrap();
        tree.directory("a").unwrap();
        tree.place("a/d.txt", cid(2), 1).unwrap();
        assert_eq!(tree.dirs.keys().collect::<Vec<_>>(), ["a", "a/b"]);
        assert!(tree.place("a/d.txt", cid(3), 1).is_err(), "same file twice");
        assert!(
            tree.place("a/b", cid(3), 1).is_err(),
            "a file where a directory is"
        );
        assert!(
            tree.directory("a/d.txt").is_err(),
            "a directory where a file is"
        );
    }

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean_path("/dir/file/").unwrap(), "dir/file");
        assert_eq!(clean_path("").unwrap(), "");
        for bad in ["a/../b", "a//b", "./a", "a/."] {
            assert!(clean_path(bad).is_err(), "{bad}");
        }
    }
}
