//! `hydrant add PATH...`: files and directories in, with the CIDs Kubo gives them (issue 16,
//! item 2), stored as one CAR through the ingest path (verified, indexed, atomic, announced).
//!
//! Each input file is read once. The importer (`hydrant_unixfs::importer`) hands out blocks
//! children first and the root last, but a CAR's header names its roots before any block, so
//! the blocks are spilled ([`CarSpill`]) to an unnamed temporary file in the repository; once
//! the walk is done the CAR is streamed to the ingest pipeline (of the running daemon, or of
//! the repository). Memory: one chunk per file being read, the pending links of its tree,
//! and the entries of the directories on the current path.
//!
//! Symlinks are stored as UnixFS symlink nodes, never followed (so a symlink loop is just a
//! symlink). Sockets, devices and FIFOs are refused, naming the file. Names starting with `.`
//! are left out unless `--hidden`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use cid::Cid;
use clap::Args;
use hydrant_node::CarSpill;
use hydrant_unixfs::importer::{
    Block, DirectoryBuilder, FileImporter, ImportProfile, Imported, Metadata, ProfileOverrides,
    symlink_block,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{api_client, daemon_answer, running_daemon};

/// Bytes read from a file at a time.
const READ_BUFFER: usize = 1 << 20;

#[derive(Args)]
pub(crate) struct AddArgs {
    /// Files or directories to add; `-` reads standard input.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Add directories and their contents.
    #[arg(short, long)]
    recursive: bool,
    /// Include files and directories whose name starts with a dot.
    #[arg(short = 'H', long)]
    hidden: bool,
    /// CID profile (IPIP-0499): `unixfs-v1-2025` (CIDv1, raw leaves, 1 MiB chunks, 1024 links)
    /// or `unixfs-v0-2015` (Kubo's legacy default: CIDv0, 256 KiB chunks, 174 links).
    #[arg(long, default_value = "unixfs-v1-2025")]
    profile: String,
    /// CID version (0 or 1), over the profile's.
    #[arg(long)]
    cid_version: Option<u8>,
    /// Raw leaves (`true`/`false`), over the profile's.
    #[arg(long, action = clap::ArgAction::Set)]
    raw_leaves: Option<bool>,
    /// Chunker `size-<bytes>`, over the profile's.
    #[arg(long)]
    chunker: Option<String>,
    /// Most links per file node, over the profile's.
    #[arg(long)]
    max_links: Option<usize>,
    /// Wrap the paths in one directory (its CID is the only root).
    #[arg(short = 'w', long)]
    wrap_with_directory: bool,
    /// Only compute the CIDs: store nothing.
    #[arg(short = 'n', long)]
    only_hash: bool,
    /// Pin the roots (`--pin=false` leaves them unpinned).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pin: bool,
    /// Print only the last root's CID.
    #[arg(short = 'Q', long)]
    quieter: bool,
    /// Print one JSON object per entry (`{"name", "cid", "size"}`), then one for the stored
    /// CAR (`{"roots", "car_key", "blocks", "pinned", ...}`, not with `--only-hash`).
    #[arg(long)]
    json: bool,
}

impl AddArgs {
    fn import_profile(&self) -> Result<ImportProfile> {
        let profile = ImportProfile::by_name(&self.profile).ok_or_else(|| {
            anyhow!(
                "unknown profile {:?}: use unixfs-v1-2025 or unixfs-v0-2015",
                self.profile
            )
        })?;
        Ok(profile.with_overrides(&ProfileOverrides {
            cid_version: self.cid_version,
            raw_leaves: self.raw_leaves,
            chunker: self.chunker.clone(),
            max_links: self.max_links,
            hash: None,
        })?)
    }
}

/// One entry added: its name as printed (relative to the argument), CID and cumulative size.
#[derive(serde::Serialize)]
struct Added {
    name: String,
    cid: String,
    size: u64,
}

/// Walks the inputs, builds their DAGs and spills the blocks as CAR sections.
struct Walk {
    profile: ImportProfile,
    recursive: bool,
    hidden: bool,
    /// Where the blocks go (`None` with `--only-hash`).
    spill: Option<CarSpill>,
    bar: ProgressBar,
    /// Called for each entry added, children before parents.
    report: Box<dyn FnMut(&Added) + Send>,
}

impl Walk {
    fn store(&mut self, blocks: Vec<Block>) -> Result<()> {
        if let Some(spill) = &mut self.spill {
            spill.write(blocks).context("writing the temporary CAR")?;
        }
        Ok(())
    }

    fn finish(&mut self, imported: Imported, name: &str) -> Result<(Cid, u64)> {
        let Imported { cid, size, blocks } = imported;
        self.store(blocks)?;
        (self.report)(&Added {
            name: name.to_owned(),
            cid: cid.to_string(),
            size,
        });
        Ok((cid, size))
    }

    /// Imports the bytes of `input` (named `what` in errors); the caller finishes it.
    fn reader(&mut self, mut input: impl Read, what: &Path) -> Result<Imported> {
        let mut file = FileImporter::new(&self.profile, Metadata::default())?;
        let mut buffer = vec![0u8; READ_BUFFER];
        loop {
            let n = match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", what.display())),
            };
            self.bar.inc(n as u64);
            let blocks = file.push(&buffer[..n]);
            self.store(blocks)?;
        }
        Ok(file.finish())
    }

    /// Adds `path`, printed as `name`.
    fn path(&mut self, path: &Path, name: &str) -> Result<(Cid, u64)> {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(path)
                .with_context(|| format!("reading the symlink {}", path.display()))?;
            let target = target
                .to_str()
                .ok_or_else(|| anyhow!("{}: the symlink's target is not UTF-8", path.display()))?;
            let imported = symlink_block(&self.profile, target, Metadata::default())?;
            self.finish(imported, name)
        } else if kind.is_file() {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let imported = self.reader(file, path)?;
            self.finish(imported, name)
        } else if kind.is_dir() {
            if !self.recursive {
                bail!("{} is a directory: use -r to add it", path.display());
            }
            let mut children = Vec::new();
            for entry in
                std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
            {
                let entry = entry.with_context(|| format!("listing {}", path.display()))?;
                let child = entry
                    .file_name()
                    .into_string()
                    .map_err(|n| anyhow!("{}: the name {n:?} is not UTF-8", path.display()))?;
                if self.hidden || !child.starts_with('.') {
                    children.push(child);
                }
            }
            children.sort();
            let mut dir = DirectoryBuilder::new(&self.profile, Metadata::default())?;
            for child in children {
                let (cid, size) = self.path(&path.join(&child), &format!("{name}/{child}"))?;
                dir.add(&child, cid, size)?;
            }
            self.finish(dir.finish()?, name)
        } else {
            bail!(
                "{}: not a regular file, directory or symlink (a socket, device or FIFO)",
                path.display()
            );
        }
    }
}

/// The name Kubo prints for an argument: its last component.
fn base_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: no file name to add it under", path.display()))?;
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{}: the name is not UTF-8", path.display()))
}

/// Runs `hydrant add`.
pub(crate) async fn run(repo_dir: &Path, args: AddArgs) -> Result<()> {
    let profile = args.import_profile()?;
    let json = args.json;
    let quieter = args.quieter;
    let client = api_client(repo_dir)?;
    let daemon = if args.only_hash {
        None
    } else {
        running_daemon(repo_dir, &client).await
    };
    let spill = if args.only_hash {
        None
    } else {
        let dir = if repo_dir.is_dir() {
            repo_dir.to_owned()
        } else {
            std::env::temp_dir()
        };
        Some(CarSpill::create_in(&dir)?)
    };
    let bar = progress_bar();
    let mut walk = Walk {
        profile,
        recursive: args.recursive,
        hidden: args.hidden,
        spill,
        bar: bar.clone(),
        report: Box::new(move |added: &Added| {
            if json {
                println!("{}", serde_json::to_string(added).unwrap_or_default());
            } else if !quieter {
                println!("added {} {}", added.cid, added.name);
            }
        }),
    };
    let paths = args.paths.clone();
    let wrap = args.wrap_with_directory;
    let (roots, mut walk) = tokio::task::spawn_blocking(move || -> Result<(Vec<Cid>, Walk)> {
        let mut roots = Vec::new();
        let mut wrapper = wrap
            .then(|| DirectoryBuilder::new(&walk.profile, Metadata::default()))
            .transpose()?;
        for path in &paths {
            let (cid, size, name) = if path.as_os_str() == "-" {
                // Kubo names standard input by its CID.
                let imported = walk.reader(std::io::stdin().lock(), Path::new("-"))?;
                let name = imported.cid.to_string();
                let (cid, size) = walk.finish(imported, &name)?;
                (cid, size, name)
            } else {
                let name = base_name(path)?;
                let (cid, size) = walk.path(path, &name)?;
                (cid, size, name)
            };
            match &mut wrapper {
                Some(dir) => dir.add(&name, cid, size)?,
                None => roots.push(cid),
            }
        }
        if let Some(dir) = wrapper {
            let (cid, _) = walk.finish(dir.finish()?, "")?;
            roots.push(cid);
        }
        Ok((roots, walk))
    })
    .await??;
    bar.finish_and_clear();
    if quieter && let Some(last) = roots.last() {
        println!("{last}");
    }
    let Some(spill) = walk.spill.take() else {
        return Ok(());
    };
    let blocks = spill.blocks();
    let car = spill
        .into_car(&roots)
        .context("reading back the temporary CAR")?;
    let summary = match &daemon {
        Some(info) => {
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                car,
                READ_BUFFER,
            ));
            let response = client
                .put(format!("{}/api/v1/cars?pin={}", info.api_url, args.pin))
                .body(body)
                .send()
                .await
                .context("sending the CAR to the daemon")?;
            daemon_answer(response).await?
        }
        None => {
            let services =
                hydrant_node::Services::open(&hydrant_node::Repo::open(repo_dir)?).await?;
            let summary = services.ingester.ingest(car, None).await?;
            hydrant_node::with_pinned_roots(&services, &summary, args.pin).await?
        }
    };
    if json {
        println!("{summary}");
    } else if !quieter {
        eprintln!(
            "stored {} blocks as {}{}",
            blocks,
            summary["car_key"].as_str().unwrap_or_default(),
            if args.pin { ", roots pinned" } else { "" }
        );
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} added {bytes} {binary_bytes_per_sec}")
            .expect("valid template"),
    )
}
