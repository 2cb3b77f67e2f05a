//! `hydrant rm CAR_KEY|ROOT_CID...` and `hydrant gc`: deletion and garbage collection (issue 17,
//! item 2; see `hydrant_node::delete_car` and `hydrant_node::gc`), through the running
//! daemon's API when there is one, else on the repository directly.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hydrant_index::{CarRecord, MAX_LIST_CARS};
use hydrant_node::{DaemonInfo, Repo, Services};

use crate::{api_client, daemon_answer, running_daemon};

/// Where the command acts: the running daemon, or the repository opened here.
enum Target {
    Daemon(reqwest::Client, DaemonInfo),
    Local(Box<Services>),
}

impl Target {
    async fn open(repo_dir: &Path) -> Result<Self> {
        let client = api_client(repo_dir)?;
        Ok(match running_daemon(repo_dir, &client).await {
            Some(info) => Target::Daemon(client, info),
            None => Target::Local(Box::new(Services::open(&Repo::open(repo_dir)?).await?)),
        })
    }

    /// One page of committed CARs after `after`, in key order.
    async fn cars(&self, after: Option<&str>) -> Result<Vec<CarRecord>> {
        Ok(match self {
            Target::Daemon(client, info) => {
                let mut url = reqwest::Url::parse(&format!("{}/api/v1/cars", info.api_url))?;
                url.query_pairs_mut()
                    .append_pair("limit", &MAX_LIST_CARS.to_string());
                if let Some(after) = after {
                    url.query_pairs_mut().append_pair("after", after);
                }
                let answer = daemon_answer(client.get(url).send().await?).await?;
                serde_json::from_value(answer).context("reading the CAR list")?
            }
            Target::Local(services) => services.catalog.list_cars(after, MAX_LIST_CARS).await?,
        })
    }

    /// Deletes the CAR `key`; its record.
    async fn delete(&self, key: &str) -> Result<CarRecord> {
        Ok(match self {
            Target::Daemon(client, info) => {
                let url = format!("{}/api/v1/cars/{key}", info.api_url);
                let answer = daemon_answer(client.delete(url).send().await?).await?;
                serde_json::from_value(answer["deleted"].clone())?
            }
            Target::Local(services) => hydrant_node::delete_car(services, key).await?,
        })
    }
}

/// The CAR keys an argument names: a CAR key (`cars/<blake3>.car`) as is, a CID every CAR that
/// has it among its roots.
async fn keys_of(target: &Target, arg: &str) -> Result<Vec<String>> {
    if arg.starts_with("cars/") {
        return Ok(vec![arg.to_owned()]);
    }
    let root: cid::Cid = arg
        .parse()
        .with_context(|| format!("{arg:?} is neither a CAR key (cars/...) nor a CID"))?;
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = target.cars(after.as_deref()).await?;
        let full = page.len() == MAX_LIST_CARS;
        after = page.last().map(|r| r.key.clone());
        keys.extend(
            page.into_iter()
                .filter(|r| {
                    r.roots
                        .iter()
                        .any(|c| c.parse::<cid::Cid>().is_ok_and(|c| c == root))
                })
                .map(|r| r.key),
        );
        if !full {
            break;
        }
    }
    if keys.is_empty() {
        bail!("no stored CAR has {root} among its roots");
    }
    Ok(keys)
}

/// Runs `hydrant rm`: deletes each CAR named (by key or root CID); prints
/// `removed <key>` (or the record as JSON) per CAR.
pub(crate) async fn rm(repo_dir: &Path, args: &[String], json: bool) -> Result<()> {
    let target = Target::open(repo_dir).await?;
    for arg in args {
        for key in keys_of(&target, arg).await? {
            let record = target.delete(&key).await?;
            if json {
                println!("{}", serde_json::json!({ "deleted": record }));
            } else {
                println!(
                    "removed {} ({} blocks, {} bytes)",
                    record.key, record.blocks, record.size
                );
            }
        }
    }
    Ok(())
}

/// Runs `hydrant gc`: deletes every CAR with no pinned root, then sweeps the store.
pub(crate) async fn gc(repo_dir: &Path, json: bool) -> Result<()> {
    let report = match Target::open(repo_dir).await? {
        Target::Daemon(client, info) => {
            let url = format!("{}/api/v1/gc", info.api_url);
            daemon_answer(client.post(url).send().await?).await?
        }
        Target::Local(services) => {
            let sweep = services.sweep_config(false);
            serde_json::to_value(hydrant_node::gc(&services, &sweep).await?)?
        }
    };
    if json {
        println!("{report}");
    } else {
        for car in report["deleted"].as_array().into_iter().flatten() {
            println!("removed {}", car["key"].as_str().unwrap_or_default());
        }
        println!(
            "{} CARs removed ({} bytes); swept {} leftover objects",
            report["deleted"].as_array().map_or(0, Vec::len),
            report["bytes"],
            report["sweep"]["staging"].as_u64().unwrap_or(0)
                + report["sweep"]["temporaries"].as_u64().unwrap_or(0)
                + report["sweep"]["orphans"].as_u64().unwrap_or(0),
        );
    }
    Ok(())
}
