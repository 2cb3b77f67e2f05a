//! Shared by the daemon integration tests: start a real daemon on loopback with free ports.

use std::path::Path;
use std::time::Duration;

use hydrant_node::Repo;
use hydrant_node::{DaemonInfo, Overrides};

/// A running daemon: what it bound, the sender that stops it, and its task.
pub type Running = (
    DaemonInfo,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// Initialises a repository at `repo_dir`, lets `configure` adjust its config, and runs a daemon
/// with `heads` DHT heads (0: no DHT) on 127.0.0.1 with free ports until the sender is used.
/// Returns once `api.json` is written (at most 10 s).
pub async fn start_daemon(
    repo_dir: &Path,
    heads: u32,
    configure: impl FnOnce(&mut Repo),
) -> Running {
    let overrides = Overrides {
        swarm_listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        heads: Some(heads),
        dht_port_base: Some(0),
        bootstrap: Vec::new(),
    };
    start_daemon_with(repo_dir, overrides, configure).await
}

/// [`start_daemon`] with the caller's `overrides` (listen addresses, heads).
pub async fn start_daemon_with(
    repo_dir: &Path,
    overrides: Overrides,
    configure: impl FnOnce(&mut Repo),
) -> Running {
    Repo::init(repo_dir).unwrap();
    let mut repo = Repo::open(repo_dir).unwrap();
    configure(&mut repo);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        hydrant_node::run(repo, overrides, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let api_file = repo_dir.join("api.json");
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&api_file) {
            return (serde_json::from_str(&text).unwrap(), stop, task);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not write api.json");
}
