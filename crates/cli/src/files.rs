//! `hydrant cat|ls|get CID[/path]`: UnixFS back out of the store (issue 16, item 2), through
//! the sans-I/O exporter (`hydrant_unixfs::exporter`) fed one block at a time: from the
//! repository when no daemon runs, else from the daemon's gateway (`?format=raw`, each block
//! checked against its CID). Memory: one block and the exporter's pending links; file bytes
//! are written as they are read.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::Blockstore as _;
use hydrant_node::{Repo, Services};
use hydrant_unixfs::exporter::{
    DirLister, EntryType, FileReader, FileStep, Resolver, TreeEntryKind, TreeExporter, TreeStep,
};
use tokio::io::AsyncWriteExt as _;

use crate::{api_client, running_daemon};

/// Where blocks come from.
enum Source {
    Local(Box<Services>),
    Gateway {
        client: reqwest::Client,
        url: String,
    },
}

impl Source {
    async fn open(repo_dir: &Path) -> Result<Self> {
        let client = api_client(repo_dir)?;
        Ok(match running_daemon(repo_dir, &client).await {
            Some(info) => Source::Gateway {
                client,
                url: info.gateway_url.trim_end_matches('/').to_owned(),
            },
            None => Source::Local(Box::new(Services::open(&Repo::open(repo_dir)?).await?)),
        })
    }

    /// The block `cid`; an error naming it when the store does not have it.
    async fn get(&self, cid: &Cid) -> Result<Bytes> {
        let block = match self {
            Source::Local(services) => services.blockstore.get(cid).await?,
            Source::Gateway { client, url } => {
                let response = client
                    .get(format!("{url}/ipfs/{cid}?format=raw"))
                    .send()
                    .await
                    .with_context(|| format!("asking the daemon's gateway for block {cid}"))?;
                match response.status() {
                    reqwest::StatusCode::NOT_FOUND => None,
                    s if s.is_success() => {
                        let data = response.bytes().await?;
                        hydrant_blocks::verify_block(cid, &data)
                            .map_err(|e| anyhow!("block {cid} from the gateway: {e}"))?;
                        Some(data)
                    }
                    s => bail!("the daemon's gateway answered {s} for block {cid}"),
                }
            }
        };
        block.ok_or_else(|| anyhow!("block {cid} is not in the store"))
    }
}

/// `CID[/path]` or `/ipfs/CID[/path]` split into the root and the path.
fn content_path(arg: &str) -> Result<(Cid, String)> {
    let arg = arg.strip_prefix("/ipfs/").unwrap_or(arg);
    let (root, path) = arg.split_once('/').unwrap_or((arg, ""));
    let root = root
        .parse()
        .map_err(|e| anyhow!("{root:?} is not a CID: {e}"))?;
    Ok((root, path.to_owned()))
}

async fn resolve(source: &Source, arg: &str) -> Result<(Cid, String)> {
    let (root, path) = content_path(arg)?;
    let mut resolver = Resolver::new(root, &path)?;
    while let Some(cid) = resolver.next_wanted()? {
        let data = source.get(&cid).await?;
        resolver.on_block(&cid, &data)?;
    }
    let resolved = resolver.finish()?;
    Ok((resolved.cid, resolved.path))
}

/// Feeds `reader` until done, handing each run of bytes to `out`.
async fn drive_file(
    source: &Source,
    reader: &mut FileReader,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<()> {
    loop {
        match reader.next()? {
            FileStep::Need(cid) => {
                let data = source.get(&cid).await?;
                reader.on_block(&cid, &data)?;
            }
            FileStep::Bytes(bytes) => out.write_all(&bytes).await?,
            FileStep::Done => return Ok(out.flush().await?),
        }
    }
}

/// `hydrant cat`: the file's bytes (from `offset`, at most `length`) to standard output.
pub(crate) async fn cat(
    repo_dir: &Path,
    arg: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<()> {
    let source = Source::open(repo_dir).await?;
    let (cid, path) = resolve(&source, arg).await?;
    let mut reader = FileReader::new(cid, path, offset, length);
    drive_file(&source, &mut reader, &mut tokio::io::stdout()).await
}

/// `hydrant ls`: the directory's entries, sorted by name (`<cid> <size> <name>[/]` as Kubo,
/// or one JSON object per entry).
pub(crate) async fn ls(repo_dir: &Path, arg: &str, json: bool) -> Result<()> {
    let source = Source::open(repo_dir).await?;
    let (cid, path) = resolve(&source, arg).await?;
    let mut lister = DirLister::new(cid, path, true);
    while let Some(cid) = lister.next_wanted()? {
        let data = source.get(&cid).await?;
        lister.on_block(&cid, &data)?;
    }
    for entry in lister.finish()? {
        let dir = entry.kind == EntryType::Directory;
        let size = entry.filesize.or(entry.tsize).unwrap_or(0);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "name": entry.name,
                    "cid": entry.cid.to_string(),
                    "type": format!("{:?}", entry.kind).to_lowercase(),
                    "size": size,
                })
            );
        } else {
            println!(
                "{} {size} {}{}",
                entry.cid,
                entry.name,
                if dir { "/" } else { "" }
            );
        }
    }
    Ok(())
}

/// `hydrant get`: the file, or the directory tree, written at `dest` (default: the last name
/// of the path, or the CID). Refuses an existing `dest`.
pub(crate) async fn get(repo_dir: &Path, arg: &str, dest: Option<PathBuf>) -> Result<()> {
    let source = Source::open(repo_dir).await?;
    let (cid, path) = resolve(&source, arg).await?;
    let dest = dest.unwrap_or_else(|| {
        PathBuf::from(
            path.rsplit('/')
                .find(|s| !s.is_empty())
                .map_or_else(|| cid.to_string(), str::to_owned),
        )
    });
    if tokio::fs::symlink_metadata(&dest).await.is_ok() {
        bail!("{} exists: not overwriting it", dest.display());
    }
    let mut tree = TreeExporter::new(cid);
    loop {
        match tree.next()? {
            TreeStep::Need(cid) => {
                let data = source.get(&cid).await?;
                tree.on_block(&cid, &data)?;
            }
            TreeStep::Entry(entry) => {
                // Names were checked by the exporter: joined under `dest`, they stay there.
                let at = if entry.path.is_empty() {
                    dest.clone()
                } else {
                    dest.join(&entry.path)
                };
                match entry.kind {
                    TreeEntryKind::Directory => tokio::fs::create_dir_all(&at).await,
                    TreeEntryKind::File(mut reader) => {
                        let mut file = tokio::fs::File::create(&at).await?;
                        drive_file(&source, &mut reader, &mut file).await?;
                        Ok(())
                    }
                    TreeEntryKind::Symlink(target) => {
                        let target = String::from_utf8(target.to_vec()).map_err(|_| {
                            anyhow!("{}: the symlink's target is not UTF-8", entry.path)
                        })?;
                        tokio::fs::symlink(target, &at).await
                    }
                }
                .with_context(|| format!("writing {}", at.display()))?;
            }
            TreeStep::Done => break,
        }
    }
    eprintln!("saved {cid} to {}", dest.display());
    Ok(())
}
