//! `hydrant`: the command-line interface to a Hydrant node.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hydrant_node::ApiToken;
use hydrant_node::Services;
use hydrant_node::config::StorageConfig;
use hydrant_node::{API_FILE, Repo, RepoError};
use hydrant_node::{DaemonInfo, Overrides};
use indicatif::{ProgressBar, ProgressStyle};

mod add;
mod files;
mod import_kubo;
mod pin;
mod rm;

fn peer_id_text(repo: &Repo) -> String {
    repo.keypair.public().to_peer_id().to_string()
}

/// Hydrant: puts content-addressed data on the IPFS network.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Repository directory.
    #[arg(long, global = true, env = "HYDRANT_REPO", default_value_os_t = default_repo())]
    repo: PathBuf,
    /// Log filter, e.g. `info` or `hydrant_bitswap=debug,info` (RUST_LOG syntax).
    #[arg(long, global = true, env = "HYDRANT_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "HYDRANT_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository: a documented config.toml and an Ed25519 identity.
    Init {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the node (creates the repository when missing). Prints one JSON line with what it
    /// bound, writes the same to <repo>/api.json, stops on SIGINT or SIGTERM.
    Daemon {
        /// Swarm listen multiaddr (repeatable); replaces `swarm.listen`.
        #[arg(
            long = "swarm-listen",
            env = "HYDRANT_SWARM_LISTEN",
            value_delimiter = ','
        )]
        swarm_listen: Vec<libp2p::Multiaddr>,
        /// Gateway listen address; replaces `gateway.listen`.
        #[arg(long, env = "HYDRANT_GATEWAY_LISTEN")]
        gateway_listen: Option<SocketAddr>,
        /// API listen address; replaces `api.listen`.
        #[arg(long, env = "HYDRANT_API_LISTEN")]
        api_listen: Option<SocketAddr>,
        /// DHT heads to run (0 turns the DHT off); replaces `dht.heads`.
        #[arg(long, env = "HYDRANT_DHT_HEADS")]
        heads: Option<u32>,
        /// TCP port of the first DHT head (0: free ports); replaces `dht.port_base`.
        #[arg(long, env = "HYDRANT_DHT_PORT_BASE")]
        dht_port_base: Option<u16>,
        /// DHT bootstrap multiaddr (repeatable, ending in /p2p/<peer ID>); replaces
        /// `dht.bootstrap`.
        #[arg(
            long = "bootstrap",
            env = "HYDRANT_DHT_BOOTSTRAP",
            value_delimiter = ','
        )]
        bootstrap: Vec<libp2p::Multiaddr>,
    },
    /// Print the peer ID and the listen multiaddrs.
    Id {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ingest CAR files (v1 or v2): verify every block, store, index. Uses the running daemon
    /// when there is one. `s3://<bucket>/<key>` names a CAR already in the node's bucket: it is
    /// verified and indexed where it is, not copied.
    Ingest {
        /// CAR files, or s3://<bucket>/<key> of CARs already in the bucket.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON summary line per file instead of text.
        #[arg(long)]
        json: bool,
        /// Pin each CAR's roots (`--pin=false` leaves them unpinned). No walk: a CAR may hold
        /// part of a DAG.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        pin: bool,
    },
    /// Add files and directories as UnixFS (the CIDs Kubo gives them), stored as one CAR
    /// through the running daemon or the repository, roots pinned. Prints `added <cid> <name>`
    /// per entry.
    Add(add::AddArgs),
    /// Print a UnixFS file (`CID[/path]`) to standard output.
    Cat {
        /// `CID[/path]` or `/ipfs/CID[/path]`.
        path: String,
        /// First byte to print.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Most bytes to print.
        #[arg(long)]
        length: Option<u64>,
    },
    /// List a UnixFS directory (`CID[/path]`): `<cid> <size> <name>`, `/` after directories.
    Ls {
        /// `CID[/path]` or `/ipfs/CID[/path]`.
        path: String,
        /// One JSON object per entry: `{"name", "cid", "type", "size"}`.
        #[arg(long)]
        json: bool,
    },
    /// Write a UnixFS file or directory tree (`CID[/path]`) to disk, bytes identical.
    Get {
        /// `CID[/path]` or `/ipfs/CID[/path]`.
        path: String,
        /// Destination (default: the last name of the path, or the CID); must not exist.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Delete stored CARs, named by key (`cars/<blake3>.car`) or by a root CID (every CAR with
    /// it among its roots). A CAR with a pinned root is refused: unpin it first. Blocks also in
    /// a kept CAR stay served.
    Rm {
        /// CAR keys or root CIDs.
        #[arg(required = true)]
        targets: Vec<String>,
        /// Print `{"deleted": record}` per CAR.
        #[arg(long)]
        json: bool,
    },
    /// Delete every CAR none of whose roots is pinned, then remove objects no CAR record
    /// points at (leftovers of interrupted ingests and deletions).
    Gc {
        /// Print `{"deleted": [records], "bytes", "sweep": {...}}`.
        #[arg(long)]
        json: bool,
    },
    /// Pins: root CIDs whose whole DAG the node keeps.
    Pin {
        #[command(subcommand)]
        command: pin::PinCommand,
    },
    /// Write a CARv1 of the DAG under CID, read from this node's store.
    Export {
        /// Root CID of the DAG.
        cid: cid::Cid,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Import a Kubo repository (repo version 13 to 18, Kubo 0.18 and later; default flatfs +
    /// LevelDB datastore), only reading it: every block verified, each pinned DAG stored as
    /// one CAR and pinned with its name, the unpinned blocks as one more CAR. Run it again to
    /// resume: what is already imported is skipped. No daemon may run on the repository.
    ImportKubo(import_kubo::ImportKuboArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check config.toml; explains any refused value. Exit status 0 when valid, 1 when not.
    Check {
        /// Print one JSON object: `{"config", "valid"}`, and for a refused value also
        /// `{"field", "value", "reason"}`.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration as TOML.
    Show,
}

fn default_repo() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".hydrant")
}

fn init_logging(filter: &str, json: bool) {
    // The storage engine's own info lines (memtable flushes, compactions) drown ours, and
    // gossipsub warns once per RPC it cannot queue to a slow peer, with the whole RPC printed:
    // Hydrant counts those (`hydrant_pubsub_dropped_total{reason="peer_queue_full"}`) instead.
    const QUIET: &str = "lsm_tree=warn,fjall=warn,libp2p_swarm=warn,libp2p_gossipsub=error";
    let directives = format!("{QUIET},{filter}");
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{QUIET},info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_json);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", explain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error` and its causes joined by `: `, leaving out a cause whose text the message already
/// holds (most of Hydrant's errors include their source in their own message).
fn explain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn run(cli: Cli) -> Result<()> {
    let repo_dir = cli.repo;
    match cli.command {
        Command::Init { json } => {
            let created = Repo::init(&repo_dir)?;
            let repo = Repo::open(&repo_dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"repo": repo_dir, "peer_id": peer_id_text(&repo), "created": created})
                );
            } else if created {
                println!(
                    "initialised {} (peer ID {})",
                    repo_dir.display(),
                    peer_id_text(&repo)
                );
            } else {
                println!(
                    "{} already exists (peer ID {})",
                    repo_dir.display(),
                    peer_id_text(&repo)
                );
            }
            Ok(())
        }
        Command::Daemon {
            swarm_listen,
            gateway_listen,
            api_listen,
            heads,
            dht_port_base,
            bootstrap,
        } => {
            if Repo::init(&repo_dir)? {
                tracing::info!(repo = %repo_dir.display(), "initialised a new repository");
            }
            let repo = Repo::open(&repo_dir)?;
            let overrides = Overrides {
                swarm_listen,
                gateway_listen,
                api_listen,
                heads,
                dht_port_base,
                bootstrap,
            };
            hydrant_node::run(repo, overrides, stop_signal()).await?;
            Ok(())
        }
        Command::Id { json } => {
            let repo = Repo::open(&repo_dir)?;
            let client = api_client(&repo_dir)?;
            let info = match running_daemon(&repo_dir, &client).await {
                Some(info) => info,
                None => DaemonInfo {
                    peer_id: peer_id_text(&repo),
                    swarm_addrs: repo
                        .config
                        .swarm
                        .listen
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    gateway_url: format!("http://{}", repo.config.gateway.listen),
                    api_url: format!("http://{}", repo.config.api.listen),
                    dht_heads: Vec::new(),
                },
            };
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("peer ID: {}", info.peer_id);
                for addr in &info.swarm_addrs {
                    println!("swarm:   {addr}");
                }
                println!("gateway: {}", info.gateway_url);
                println!("api:     {}", info.api_url);
                for addr in &info.dht_heads {
                    println!("dht:     {addr}");
                }
            }
            Ok(())
        }
        Command::Ingest { files, json, pin } => ingest(&repo_dir, &files, json, pin).await,
        Command::Pin { command } => pin::run(&repo_dir, command).await,
        Command::Rm { targets, json } => rm::rm(&repo_dir, &targets, json).await,
        Command::Gc { json } => rm::gc(&repo_dir, json).await,
        Command::Add(args) => add::run(&repo_dir, args).await,
        Command::ImportKubo(args) => import_kubo::run(&repo_dir, args).await,
        Command::Cat {
            path,
            offset,
            length,
        } => files::cat(&repo_dir, &path, offset, length).await,
        Command::Ls { path, json } => files::ls(&repo_dir, &path, json).await,
        Command::Get { path, output } => files::get(&repo_dir, &path, output).await,
        Command::Export { cid, output } => export(&repo_dir, cid, output.as_deref()).await,
        Command::Config {
            command: ConfigCommand::Check { json },
        } => {
            let path = repo_dir.join("config.toml");
            let opened = Repo::open(&repo_dir);
            if json {
                let report = match &opened {
                    Ok(_) => serde_json::json!({"config": path, "valid": true}),
                    Err(RepoError::Refused { source, .. }) => serde_json::json!({
                        "config": path,
                        "valid": false,
                        "field": source.field,
                        "value": source.value,
                        "reason": source.reason,
                    }),
                    Err(e) => {
                        serde_json::json!({"config": path, "valid": false, "reason": e.to_string()})
                    }
                };
                println!("{report}");
            }
            opened?;
            if !json {
                println!("{}: valid", path.display());
            }
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            let repo = Repo::open(&repo_dir)?;
            print!("{}", toml::to_string(&repo.config.redacted())?);
            Ok(())
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A client of the daemon's API: it sends `Authorization: Bearer <token>` when the repository
/// sets `api.token_file` (a plain client when there is no repository).
fn api_client(repo_dir: &Path) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(repo) = Repo::open(repo_dir)
        && let Some(token) = ApiToken::load(&repo)?
    {
        headers.insert(reqwest::header::AUTHORIZATION, token.authorization());
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// The daemon that holds this repository, if one is running and answers.
async fn running_daemon(repo: &Path, client: &reqwest::Client) -> Option<DaemonInfo> {
    let text = std::fs::read_to_string(repo.join(API_FILE)).ok()?;
    let info: DaemonInfo = serde_json::from_str(&text).ok()?;
    let live: DaemonInfo = client
        .get(format!("{}/api/v1/id", info.api_url))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    (live.peer_id == info.peer_id).then_some(live)
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

async fn ingest(repo_dir: &Path, files: &[PathBuf], json: bool, pin: bool) -> Result<()> {
    let client = api_client(repo_dir)?;
    let daemon = running_daemon(repo_dir, &client).await;
    let services = match &daemon {
        Some(_) => None,
        None => Some(Services::open(&Repo::open(repo_dir)?).await?),
    };
    let mut failed = 0;
    for file in files {
        let stored = match stored_key(repo_dir, file) {
            Ok(key) => key,
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {}", file.display(), explain(&e));
                continue;
            }
        };
        let result = match (&daemon, &services, stored) {
            (Some(info), _, Some(key)) => index_remote(&client, info, &key, pin).await,
            (Some(info), _, None) => ingest_remote(&client, info, file, pin).await,
            (None, Some(services), stored) => {
                let summary = match stored {
                    Some(key) => services.ingester.index_stored(&key, None).await?,
                    None => ingest_local(services, file).await?,
                };
                Ok(hydrant_node::with_pinned_roots(services, &summary, pin).await?)
            }
            (None, None, _) => unreachable!("one of daemon or local services is set"),
        };
        match result {
            Ok(summary) if json => println!("{summary}"),
            Ok(summary) => println!(
                "{}: {} blocks, {} bytes, roots {}, stored as {}{}",
                file.display(),
                summary["blocks"],
                summary["bytes"],
                summary["roots"],
                summary["car_key"].as_str().unwrap_or_default(),
                if summary["already_present"] == true {
                    " (already present)"
                } else {
                    ""
                }
            ),
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {}", file.display(), explain(&e));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} CAR files failed", files.len());
    }
    Ok(())
}

/// For `s3://bucket/key`: the object key, after checking that the repository stores CARs in
/// that bucket. `None` for a local file.
fn stored_key(repo_dir: &Path, file: &Path) -> Result<Option<String>> {
    let Some(rest) = file.to_str().and_then(|f| f.strip_prefix("s3://")) else {
        return Ok(None);
    };
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .context("expected s3://<bucket>/<object key>")?;
    let repo = Repo::open(repo_dir)?;
    match &repo.config.storage {
        StorageConfig::S3(s3) if s3.bucket == bucket => Ok(Some(key.to_owned())),
        StorageConfig::S3(s3) => bail!(
            "the CAR must already be in this node's bucket {:?}, not {bucket:?} (storage.bucket)",
            s3.bucket
        ),
        _ => bail!("s3:// CARs need storage.kind = \"s3\" in config.toml"),
    }
}

/// Asks the daemon to index the CAR stored under `key` in place.
async fn index_remote(
    client: &reqwest::Client,
    info: &DaemonInfo,
    key: &str,
    pin: bool,
) -> Result<serde_json::Value> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/cars/index", info.api_url),
        &[("key", key), ("pin", &pin.to_string())],
    )?;
    let response = client
        .post(url)
        .send()
        .await
        .context("asking the daemon to index the stored CAR")?;
    daemon_answer(response).await
}

async fn daemon_answer(response: reqwest::Response) -> Result<serde_json::Value> {
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("reading the daemon's answer")?;
    if !status.is_success() {
        let error = body["error"]
            .as_str()
            .unwrap_or("the daemon refused the CAR");
        match body["request_id"].as_str() {
            Some(id) => bail!("{error} (request-id {id} in the daemon's log)"),
            None => bail!("{error}"),
        }
    }
    Ok(body)
}

async fn ingest_local(services: &Services, file: &Path) -> Result<hydrant_ingest::IngestSummary> {
    let input = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata().await?.len();
    let progress = Arc::new(hydrant_ingest::IngestProgress::default());
    let bar = progress_bar(size);
    bar.set_message(file.display().to_string());
    let ticker = {
        let (progress, bar) = (progress.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.bytes.load(Ordering::Relaxed));
                bar.set_message(format!(
                    "{} blocks",
                    progress.blocks.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let result = services.ingester.ingest(input, Some(progress)).await;
    ticker.abort();
    bar.finish_and_clear();
    Ok(result?)
}

async fn ingest_remote(
    client: &reqwest::Client,
    info: &DaemonInfo,
    file: &Path,
    pin: bool,
) -> Result<serde_json::Value> {
    let input = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata().await?.len();
    let bar = progress_bar(size);
    bar.set_message(format!("{} -> daemon", file.display()));
    let counted = {
        use futures::TryStreamExt;
        let bar = bar.clone();
        tokio_util::io::ReaderStream::with_capacity(input, 1 << 20)
            .inspect_ok(move |chunk| bar.inc(chunk.len() as u64))
    };
    let response = client
        .put(format!("{}/api/v1/cars?pin={pin}", info.api_url))
        .body(reqwest::Body::wrap_stream(counted))
        .send()
        .await
        .context("sending the CAR to the daemon")?;
    bar.finish_and_clear();
    daemon_answer(response).await
}

async fn export(repo_dir: &Path, cid: cid::Cid, output: Option<&Path>) -> Result<()> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match output {
        Some(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let mut stream = match running_daemon(repo_dir, &api_client(repo_dir)?).await {
        Some(info) => {
            let response = reqwest::get(format!(
                "{}/ipfs/{cid}?format=car&dag-scope=all&car-dups=n",
                info.gateway_url
            ))
            .await?;
            if !response.status().is_success() {
                bail!("the daemon answered {} for {cid}", response.status());
            }
            response
                .bytes_stream()
                .map(|r| {
                    r.context("the daemon ended the CAR early: a block of the DAG is missing or unreadable (see its log)")
                })
                .boxed()
        }
        None => {
            let services = Services::open(&Repo::open(repo_dir)?).await?;
            hydrant_node::car_stream(&services, cid)
                .map(|r| r.map_err(anyhow::Error::from))
                .boxed()
        }
    };
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(())
}
