//! `hydrant pin add|ls|rm`: the pins of the repository, through the running daemon's API when
//! there is one, else on the repository directly (see `hydrant_node::pin_dag`).

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;
use hydrant_index::MAX_LIST_PINS;
use hydrant_node::{PinView, Repo, Services};

use crate::{api_client, daemon_answer, running_daemon};

#[derive(Subcommand)]
pub(crate) enum PinCommand {
    /// Pin the DAG under CID (its root and every block under it), once every block is in the
    /// store; otherwise fail naming the first missing block.
    Add {
        /// Root CID of the DAG.
        cid: cid::Cid,
        /// A name for the pin (at most 255 bytes).
        #[arg(long, default_value = "")]
        name: String,
        /// Print `{"pin": {"cid", "name", "created_at"}, "new": bool}`.
        #[arg(long)]
        json: bool,
    },
    /// List the pins, in CID byte order.
    Ls {
        /// Print one JSON object per pin: `{"cid", "name", "created_at"}`.
        #[arg(long)]
        json: bool,
    },
    /// Unpin CID (its blocks stay stored until garbage collection).
    Rm {
        /// The pinned CID.
        cid: cid::Cid,
        /// Print `{"removed": bool}`.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `hydrant pin` command against the repository `repo_dir`.
pub(crate) async fn run(repo_dir: &Path, command: PinCommand) -> Result<()> {
    let client = api_client(repo_dir)?;
    let daemon = running_daemon(repo_dir, &client).await;
    let local = match &daemon {
        Some(_) => None,
        None => Some(Services::open(&Repo::open(repo_dir)?).await?),
    };
    match command {
        PinCommand::Add { cid, name, json } => {
            let answer = match (&daemon, &local) {
                (Some(info), _) => {
                    let url = reqwest::Url::parse_with_params(
                        &format!("{}/api/v1/pins/{cid}", info.api_url),
                        &[("name", &name)],
                    )?;
                    daemon_answer(client.post(url).send().await?).await?
                }
                (None, Some(services)) => {
                    let new = hydrant_node::pin_dag(services, cid, name).await?;
                    let pin = services.pins.pin(&cid).await?;
                    let pin = pin.as_ref().map(PinView::from);
                    serde_json::json!({ "pin": pin, "new": new })
                }
                (None, None) => unreachable!("one of daemon or local services is set"),
            };
            if json {
                println!("{answer}");
            } else {
                println!("pinned {cid}");
            }
        }
        PinCommand::Ls { json } => {
            let mut after: Option<String> = None;
            loop {
                let page: Vec<PinView> = match (&daemon, &local) {
                    (Some(info), _) => {
                        let mut url =
                            reqwest::Url::parse(&format!("{}/api/v1/pins", info.api_url))?;
                        if let Some(after) = &after {
                            url.query_pairs_mut().append_pair("after", after);
                        }
                        let answer = daemon_answer(client.get(url).send().await?).await?;
                        serde_json::from_value(answer["pins"].clone())?
                    }
                    (None, Some(services)) => {
                        let after: Option<cid::Cid> =
                            after.as_deref().map(str::parse).transpose()?;
                        let pins = services
                            .pins
                            .list_pins(after.as_ref(), MAX_LIST_PINS)
                            .await?;
                        pins.iter().map(PinView::from).collect()
                    }
                    (None, None) => unreachable!("one of daemon or local services is set"),
                };
                for pin in &page {
                    if json {
                        println!("{}", serde_json::to_string(pin)?);
                    } else if pin.name.is_empty() {
                        println!("{} recursive", pin.cid);
                    } else {
                        println!("{} recursive {}", pin.cid, pin.name);
                    }
                }
                if page.len() < MAX_LIST_PINS {
                    break;
                }
                after = page.last().map(|p| p.cid.clone());
            }
        }
        PinCommand::Rm { cid, json } => {
            let removed = match (&daemon, &local) {
                (Some(info), _) => {
                    let url = format!("{}/api/v1/pins/{cid}", info.api_url);
                    daemon_answer(client.delete(url).send().await?).await?["removed"] == true
                }
                (None, Some(services)) => services.pins.remove_pin(&cid).await?,
                (None, None) => unreachable!("one of daemon or local services is set"),
            };
            if json {
                println!("{}", serde_json::json!({ "removed": removed }));
            } else if !removed {
                bail!("{cid} is not pinned");
            } else {
                println!("unpinned {cid}");
            }
        }
    }
    Ok(())
}
