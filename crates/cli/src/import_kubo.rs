//! `hydrant import-kubo PATH`: moving in from Kubo (issue 19, item 4).
//!
//! The Kubo repository is only read ([`hydrant_kubo`]: version 13 to 18, the default flatfs +
//! LevelDB datastore, no live Kubo holding `repo.lock`; the pins are read from a copy of the
//! LevelDB files). Then, into the Hydrant repository (no daemon may be running on it):
//!
//! 1. each pin, in the pinner's key order: a recursive pin's DAG is walked from its root in
//!    the flatfs blockstore (dag-pb, raw and dag-cbor links; dag-json too), depth first, every
//!    block read once and its hash verified; a direct pin is its root block alone. The blocks
//!    are written as one CAR (root = the pin's CID) through the ingest pipeline, exactly as
//!    `hydrant ingest` stores and indexes a CAR, then the CID is pinned with the pin's name.
//!    A DAG with a missing, corrupt, oversized or undecodable block is skipped whole, saying
//!    which block and why;
//! 2. unless `--pinned-only`, every block file the index does not hold yet (blocks of other
//!    DAGs, of skipped pins, of the MFS root) is read, verified and written into one more CAR
//!    with no root, unpinned. A flatfs key is a multihash, so a block's codec is not known: such
//!    blocks are stored under raw CIDs (`bafk...`); the index is keyed by multihash, so they
//!    are served under any CID with their multihash (a dag-pb CID of them works).
//!
//! Resuming: a pin already in Hydrant is skipped ("already imported"), and a block the index
//! already holds is not read again, so running the command again after an interruption
//! finishes the work without repeating it.
//!
//! Memory: one block (at most [`MAX_BLOCK_SIZE`]), the set of CIDs of the DAG being walked and
//! the stack of links still to visit; the CAR being built is spilled to an unnamed file in the
//! Hydrant repository ([`CarSpill`]).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cid::Cid;
use clap::Args;
use hydrant_blocks::{VerifyError, codes};
use hydrant_car::MAX_BLOCK_SIZE;
use hydrant_index::MAX_PIN_NAME_BYTES;
use hydrant_kubo::flatfs::{block_files, block_path};
use hydrant_kubo::{KuboPin, KuboRepo, PinMode};
use hydrant_node::{CarSpill, Repo, Services};
use hydrant_unixfs::importer::Block;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{api_client, running_daemon};

#[derive(Args)]
pub(crate) struct ImportKuboArgs {
    /// The Kubo repository (`IPFS_PATH`, by default `~/.ipfs`). Only read.
    path: PathBuf,
    /// Import the pinned DAGs only; leave the unpinned blocks in Kubo.
    #[arg(long)]
    pinned_only: bool,
    /// Print the summary as one JSON object (see `Summary`).
    #[arg(long)]
    json: bool,
}

/// What an import did, printed at the end (`--json`: this object).
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    /// The Kubo repository read.
    kubo_repo: PathBuf,
    /// Its repo version.
    repo_version: u32,
    imported: Imported,
    skipped: Skipped,
    /// Blocks whose bytes do not hash to their key: never imported, and the pins above them
    /// are skipped. The exit status stays 0: this list is how a corrupt block is reported.
    corrupt: Vec<Corrupt>,
}

#[derive(Debug, Default, serde::Serialize)]
struct Imported {
    /// Pins imported (their DAG stored, the pin recorded).
    pins: u64,
    /// Blocks written in those pins' CARs.
    blocks: u64,
    /// Bytes of block data in those CARs.
    bytes: u64,
    /// Unpinned blocks written in the last CAR.
    unpinned_blocks: u64,
    /// Bytes of those.
    unpinned_bytes: u64,
    /// Object keys of the CARs stored.
    cars: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
struct Skipped {
    /// Pins not imported, with why.
    pins: Vec<SkippedPin>,
    /// Pin records that do not decode.
    pin_records: Vec<String>,
    /// Block files the index already held (imported before, or part of a pin imported now):
    /// not read again.
    blocks_already_in_hydrant: u64,
    /// Block files not imported, with why (a name that is not a block key, an unsupported
    /// hash function, a block too large).
    blocks: Vec<SkippedBlock>,
    /// True with `--pinned-only`: the unpinned blocks were not looked at.
    unpinned: bool,
}

#[derive(Debug, serde::Serialize)]
struct SkippedPin {
    cid: String,
    mode: PinMode,
    name: String,
    /// `already_imported`, `missing_block`, `corrupt_block`, `block_too_large`,
    /// `unsupported_codec`, `undecodable_block`, `unsupported_hash`, `unreadable_block`,
    /// `name_too_long`.
    reason: &'static str,
    /// The block concerned and details (empty for `already_imported`).
    detail: String,
}

#[derive(Debug, serde::Serialize)]
struct SkippedBlock {
    path: PathBuf,
    reason: &'static str,
    detail: String,
}

#[derive(Debug, serde::Serialize)]
struct Corrupt {
    cid: String,
    path: PathBuf,
}

/// Why a DAG or a block is not imported: a reason code and a detail naming the block.
struct Skip {
    reason: &'static str,
    detail: String,
}

/// The Kubo side of an import: the repository, and the corrupt blocks met so far (by path,
/// so that a block met in two DAGs and in the unpinned pass is reported once).
struct Reader {
    kubo: KuboRepo,
    corrupt: BTreeMap<PathBuf, Cid>,
    bar: ProgressBar,
}

impl Reader {
    /// Reads and verifies the block `cid`; a corrupt block is recorded.
    fn block(&mut self, cid: &Cid) -> Result<Vec<u8>, Skip> {
        let path = block_path(self.kubo.blocks_dir(), self.kubo.shard, cid.hash());
        self.read(cid, &path)
    }

    fn read(&mut self, cid: &Cid, path: &Path) -> Result<Vec<u8>, Skip> {
        let skip = |reason, detail: String| Skip { reason, detail };
        let size = match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(skip("missing_block", format!("block {cid} is not in Kubo")));
            }
            Err(e) => return Err(skip("unreadable_block", format!("{}: {e}", path.display()))),
        };
        if size > MAX_BLOCK_SIZE as u64 {
            return Err(skip(
                "block_too_large",
                format!("block {cid} is {size} bytes, over {MAX_BLOCK_SIZE}"),
            ));
        }
        let data = std::fs::read(path)
            .map_err(|e| skip("unreadable_block", format!("{}: {e}", path.display())))?;
        self.bar.inc(data.len() as u64);
        match hydrant_blocks::verify_block(cid, &data) {
            Ok(()) => Ok(data),
            Err(VerifyError::Mismatch { .. }) => {
                self.corrupt.entry(path.to_owned()).or_insert(*cid);
                Err(skip(
                    "corrupt_block",
                    format!("block {cid} ({}) does not match its hash", path.display()),
                ))
            }
            Err(e) => Err(skip("unsupported_hash", e.to_string())),
        }
    }

    /// Walks the DAG of `pin` into `spill` (see the module docs): the blocks and bytes
    /// written, or why the pin is skipped.
    fn walk(&mut self, pin: &KuboPin, spill: &mut CarSpill) -> Result<Result<(u64, u64), Skip>> {
        let mut seen = HashSet::new();
        let mut stack = vec![pin.cid];
        let mut bytes = 0;
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) || cid.hash().code() == codes::IDENTITY {
                continue;
            }
            let data = match self.block(&cid) {
                Ok(data) => data,
                Err(skip) => return Ok(Err(skip)),
            };
            if pin.mode == PinMode::Recursive {
                match hydrant_unixfs::links(&cid, &data) {
                    Ok(links) => stack.extend(links.into_iter().rev()),
                    Err(hydrant_unixfs::DagError::UnsupportedCodec { codec, .. }) => {
                        return Ok(Err(Skip {
                            reason: "unsupported_codec",
                            detail: format!("block {cid} has codec {codec:#x}"),
                        }));
                    }
                    Err(e) => {
                        return Ok(Err(Skip {
                            reason: "undecodable_block",
                            detail: e.to_string(),
                        }));
                    }
                }
            }
            bytes += data.len() as u64;
            spill
                .write([Block {
                    cid,
                    data: data.into(),
                }])
                .context("writing the temporary CAR")?;
        }
        Ok(Ok((spill.blocks(), bytes)))
    }
}

/// Runs `hydrant import-kubo`.
pub(crate) async fn run(repo_dir: &Path, args: ImportKuboArgs) -> Result<()> {
    if running_daemon(repo_dir, &api_client(repo_dir)?)
        .await
        .is_some()
    {
        bail!(
            "a Hydrant daemon is running on {}: stop it first (import-kubo writes to the \
             repository directly)",
            repo_dir.display()
        );
    }
    let kubo = KuboRepo::open(&args.path)
        .with_context(|| format!("opening the Kubo repository {}", args.path.display()))?;
    let services = Services::open(&Repo::open(repo_dir)?).await?;
    let pins = kubo.pins(repo_dir)?;
    let mut summary = Summary {
        kubo_repo: args.path.clone(),
        repo_version: kubo.version,
        ..Summary::default()
    };
    let bar = progress_bar();
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let mut reader = Reader {
        kubo,
        corrupt: BTreeMap::new(),
        bar: bar.clone(),
    };
    let total = pins.len();
    for (n, pin) in pins.into_iter().enumerate() {
        bar.set_message(format!("pin {}/{total}", n + 1));
        let pin = match pin {
            Ok(pin) => pin,
            Err(e) => {
                summary.skipped.pin_records.push(e.to_string());
                continue;
            }
        };
        let skipped = |reason, detail| SkippedPin {
            cid: pin.cid.to_string(),
            mode: pin.mode,
            name: pin.name.clone(),
            reason,
            detail,
        };
        if pin.name.len() > MAX_PIN_NAME_BYTES {
            let detail = format!(
                "a name of {} bytes (Hydrant keeps at most {MAX_PIN_NAME_BYTES})",
                pin.name.len()
            );
            summary.skipped.pins.push(skipped("name_too_long", detail));
            continue;
        }
        if services.pins.pin(&pin.cid).await?.is_some() {
            summary
                .skipped
                .pins
                .push(skipped("already_imported", String::new()));
            continue;
        }
        let mut spill = CarSpill::create_in(repo_dir)?;
        let (blocks, bytes) = match reader.walk(&pin, &mut spill)? {
            Ok(walked) => walked,
            Err(Skip { reason, detail }) => {
                summary.skipped.pins.push(skipped(reason, detail));
                continue;
            }
        };
        let car = spill.into_car(&[pin.cid])?;
        let stored = services.ingester.ingest(car, None).await?;
        hydrant_node::pin_ingested(&services, pin.cid, pin.name.clone()).await?;
        summary.imported.pins += 1;
        summary.imported.blocks += blocks;
        summary.imported.bytes += bytes;
        summary.imported.cars.push(stored.car_key);
    }
    if args.pinned_only {
        summary.skipped.unpinned = true;
    } else {
        bar.set_message("unpinned blocks");
        import_unpinned(&services, repo_dir, &mut reader, &mut summary).await?;
    }
    bar.finish_and_clear();
    summary.corrupt = reader
        .corrupt
        .into_iter()
        .map(|(path, cid)| Corrupt {
            cid: cid.to_string(),
            path,
        })
        .collect();
    print(&summary, args.json)
}

/// Writes every block file the index does not hold into one CAR with no root (see the module
/// docs).
async fn import_unpinned(
    services: &Services,
    repo_dir: &Path,
    reader: &mut Reader,
    summary: &mut Summary,
) -> Result<()> {
    let mut spill = CarSpill::create_in(repo_dir)?;
    let mut bytes = 0;
    for file in block_files(reader.kubo.blocks_dir())? {
        let file = file?;
        let Some(multihash) = file.multihash else {
            summary.skipped.blocks.push(SkippedBlock {
                path: file.path,
                reason: "not_a_block_key",
                detail: "the name is not the base32 of a multihash".into(),
            });
            continue;
        };
        if reader.corrupt.contains_key(&file.path) {
            continue;
        }
        if services.index.contains(&multihash).await? {
            summary.skipped.blocks_already_in_hydrant += 1;
            continue;
        }
        let cid = Cid::new_v1(codes::RAW, multihash);
        match reader.read(&cid, &file.path) {
            Ok(data) => {
                bytes += data.len() as u64;
                spill.write([Block {
                    cid,
                    data: data.into(),
                }])?;
            }
            Err(Skip {
                reason: "corrupt_block",
                ..
            }) => {}
            Err(Skip { reason, detail }) => summary.skipped.blocks.push(SkippedBlock {
                path: file.path,
                reason,
                detail,
            }),
        }
    }
    let blocks = spill.blocks();
    if blocks > 0 {
        let stored = services.ingester.ingest(spill.into_car(&[])?, None).await?;
        summary.imported.unpinned_blocks = blocks;
        summary.imported.unpinned_bytes = bytes;
        summary.imported.cars.push(stored.car_key);
    }
    Ok(())
}

fn print(summary: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    let Imported {
        pins,
        blocks,
        bytes,
        unpinned_blocks,
        unpinned_bytes,
        cars,
    } = &summary.imported;
    println!(
        "imported {pins} pins ({blocks} blocks, {bytes} bytes) and {unpinned_blocks} unpinned \
         blocks ({unpinned_bytes} bytes) from {} (repo version {}) as {} CARs",
        summary.kubo_repo.display(),
        summary.repo_version,
        cars.len()
    );
    for pin in &summary.skipped.pins {
        println!(
            "skipped pin {} ({}{}): {} {}",
            pin.cid,
            serde_json::to_value(pin.mode)?.as_str().unwrap_or_default(),
            if pin.name.is_empty() {
                String::new()
            } else {
                format!(" {:?}", pin.name)
            },
            pin.reason.replace('_', " "),
            pin.detail
        );
    }
    for record in &summary.skipped.pin_records {
        println!("skipped {record}");
    }
    if summary.skipped.blocks_already_in_hydrant > 0 {
        println!(
            "{} block files already in Hydrant (from the pins above or an earlier import)",
            summary.skipped.blocks_already_in_hydrant
        );
    }
    for block in &summary.skipped.blocks {
        println!(
            "skipped block file {}: {}",
            block.path.display(),
            block.detail
        );
    }
    if summary.skipped.unpinned {
        println!("unpinned blocks left in Kubo (--pinned-only)");
    }
    for corrupt in &summary.corrupt {
        println!(
            "corrupt block {} at {}",
            corrupt.cid,
            corrupt.path.display()
        );
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg}: {bytes} read {binary_bytes_per_sec}")
            .expect("valid template"),
    )
}
