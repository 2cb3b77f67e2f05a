//! `?format=tar` (IPIP-0288) and [`TarBody`], the tar stream the node's Kubo `get` shares.

use super::*;

/// `?format=tar`: the UnixFS file or tree as a tar (IPIP-0288), named by the last path
/// segment (the CID for a bare CID), each directory before its contents.
pub(super) async fn serve_tar(ctx: &Ctx<'_>, target: &Target) -> Result<Response, GatewayError> {
    let etag = format!("W/\"{}.x-tar\"", target.cid);
    let common = ctx.common(&etag, &target.roots, ctx.content_location("tar"));
    if let Some(unchanged) = ctx.unchanged(&common) {
        return Ok(unchanged);
    }
    let name = target
        .name()
        .map_or_else(|| target.cid.to_string(), str::to_string);
    let mut headers = common.headers();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TAR));
    insert(
        &mut headers,
        header::CONTENT_DISPOSITION,
        &disposition("attachment", &ctx.filename(format!("{name}.tar"))),
    );
    // Entries without an mtime get 0: the same bytes on every request.
    let mut body = TarBody::new(
        ctx.state.blocks.clone(),
        target.cid,
        target.data.clone(),
        name,
        0,
    );
    // The first chunk is read before the status: a bad root (or its entries' names) is an
    // error status, not a cut body.
    let first = body.next_chunk().await?;
    if ctx.head {
        // A body of unknown length, as GET's stream: GET's headers (no Content-Length).
        let none = futures::stream::empty::<Result<Bytes, std::io::Error>>();
        return Ok((StatusCode::OK, headers, Body::from_stream(none)).into_response());
    }
    Ok((StatusCode::OK, headers, stream_body(body, first)).into_response())
}

/// A file being written into the tar.
pub(super) struct TarFile {
    reader: FileReader,
    size: u64,
    written: u64,
}

/// A tar of a UnixFS file or tree (ustar, PAX where ustar cannot hold a value), entry by
/// entry, each directory before its contents, file bytes as they are read: one block and the
/// exporter's pending links in memory. Served by `?format=tar` and by the node's Kubo `get`.
pub struct TarBody {
    store: BlockSource,
    tree: TreeExporter,
    name: String,
    file: Option<TarFile>,
    finished: bool,
    default_mtime: i64,
}

impl TarBody {
    /// The tar of the tree under `root` (whose block is `root_data`), its top entry named
    /// `name`; an entry without a UnixFS `mtime` gets `default_mtime` (seconds since the Unix
    /// epoch).
    pub fn new(
        store: Arc<dyn Blockstore>,
        root: Cid,
        root_data: Bytes,
        name: String,
        default_mtime: i64,
    ) -> Self {
        TarBody {
            store: BlockSource {
                store,
                root: (root, root_data),
            },
            tree: TreeExporter::new(root),
            name,
            file: None,
            finished: false,
            default_mtime,
        }
    }

    /// The next bytes of the tar, `Ok(None)` after its end.
    ///
    /// # Errors
    /// A missing block ([`GatewayError::Export`] naming it and its path), a block that does
    /// not decode, a file whose bytes disagree with its stated size, a storage failure.
    pub async fn next_bytes(&mut self) -> Result<Option<Bytes>, GatewayError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some(file) = &mut self.file {
                match self.store.next_file_bytes(&mut file.reader).await? {
                    Some(bytes) => {
                        file.written += bytes.len() as u64;
                        if file.written > file.size {
                            return Err(size_mismatch(file));
                        }
                        return Ok(Some(bytes));
                    }
                    None => {
                        if file.written != file.size {
                            return Err(size_mismatch(file));
                        }
                        let pad = padding(file.size);
                        self.file = None;
                        if pad > 0 {
                            return Ok(Some(Bytes::from(vec![0; pad])));
                        }
                    }
                }
                continue;
            }
            match self.tree.next()? {
                TreeStep::Need(cid) => {
                    let data = self.store.get(&cid, self.tree.path()).await?;
                    self.tree.on_block(&cid, &data)?;
                }
                TreeStep::Entry(entry) => {
                    let entry = *entry;
                    let path = if entry.path.is_empty() {
                        self.name.clone()
                    } else {
                        format!("{}/{}", self.name, entry.path)
                    };
                    let (kind, reader) = match entry.kind {
                        TreeEntryKind::Directory => (TarKind::Directory, None),
                        TreeEntryKind::Symlink(target) => (TarKind::Symlink(target), None),
                        TreeEntryKind::File(reader) => {
                            (TarKind::File(reader.size().unwrap_or(0)), Some(reader))
                        }
                    };
                    let mtime = match entry.mtime {
                        Some((secs, nanos)) if nanos <= 999_999_999 => secs,
                        _ => self.default_mtime,
                    };
                    let header = tar_header(&path, &kind, tar_mode(entry.mode, &kind), mtime);
                    if let (TarKind::File(size), Some(reader)) = (&kind, reader) {
                        self.file = Some(TarFile {
                            reader: *reader,
                            size: *size,
                            written: 0,
                        });
                    }
                    return Ok(Some(Bytes::from(header)));
                }
                TreeStep::Done => {
                    self.finished = true;
                    return Ok(Some(Bytes::from_static(&[0; 2 * TAR_BLOCK])));
                }
            }
        }
    }
}

impl Chunks for TarBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        self.next_bytes().await
    }
}

pub(super) fn size_mismatch(file: &TarFile) -> GatewayError {
    GatewayError::Export(ExportError::SizeMismatch {
        path: file.reader.path().to_string(),
        cid: Cid::default(),
        what: "file size stated by its root",
        expected: file.size,
        actual: file.written,
    })
}
