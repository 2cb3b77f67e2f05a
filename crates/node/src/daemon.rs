//! The daemon: opens the stores, starts the swarm, Bitswap, the gateway and the API, announces
//! what it bound, and runs until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use tokio::net::TcpListener;

use crate::dht;
use crate::health::Health;
use crate::repo::{API_FILE, Repo, write_atomic};
use crate::routing::NodeRouter;
use crate::services::Services;
use crate::{NodeError, swarm};
use hydrant_dht::ProviderInfo;
use hydrant_routing::RoutingConfig;

pub use crate::repo::DaemonInfo;

/// Listener addresses given on the command line or in the environment; they replace the config's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `swarm.listen` when not empty.
    pub swarm_listen: Vec<Multiaddr>,
    /// Replaces `gateway.listen`.
    pub gateway_listen: Option<SocketAddr>,
    /// Replaces `api.listen`.
    pub api_listen: Option<SocketAddr>,
    /// Replaces `dht.heads`; 0 sets `dht.enabled = false`.
    pub heads: Option<u32>,
    /// Replaces `dht.port_base`.
    pub dht_port_base: Option<u16>,
    /// Replaces `dht.bootstrap` when not empty.
    pub bootstrap: Vec<Multiaddr>,
}

/// How long in-flight HTTP responses may take to finish after a stop signal.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the daemon on `repo` until `shutdown` completes. Prints the [`DaemonInfo`] line on stdout
/// once every listener is bound, and removes `api.json` on the way out.
///
/// # Errors
/// [`NodeError`] when a store cannot be opened or a listener cannot be bound.
pub async fn run(
    mut repo: Repo,
    overrides: Overrides,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    if !overrides.swarm_listen.is_empty() {
        repo.config.swarm.listen = overrides.swarm_listen.clone();
    }
    if let Some(addr) = overrides.gateway_listen {
        repo.config.gateway.listen = addr;
    }
    if let Some(addr) = overrides.api_listen {
        repo.config.api.listen = addr;
    }
    match overrides.heads {
        Some(0) => repo.config.dht.enabled = false,
        Some(n) => repo.config.dht.heads = n,
        None => {}
    }
    if let Some(port) = overrides.dht_port_base {
        repo.config.dht.port_base = port;
    }
    if !overrides.bootstrap.is_empty() {
        repo.config.dht.bootstrap = overrides.bootstrap.clone();
    }
    repo.config.validate().map_err(NodeError::Config)?;
    let api_token = crate::api::ApiToken::load(&repo).map_err(NodeError::Config)?;

    let services = Services::open(&repo).await?;
    let health = Arc::new(Health::new(
        services.store.clone(),
        services.pg.clone(),
        services.filtered.clone(),
    ));
    let local_store = match &repo.config.storage {
        crate::config::StorageConfig::Local { path } => Some(repo.resolve(path)),
        crate::config::StorageConfig::S3(_) => None,
    };
    let sweep = hydrant_ingest::SweepConfig::for_store(local_store, services.pg.is_some());
    let (ingester, wait) = (services.ingester.clone(), sweep.removes_everything());
    let swept = tokio::spawn(async move {
        match ingester.sweep(&sweep).await {
            Ok(r) if r.removed() == 0 => {}
            Ok(r) => tracing::info!(
                removed = r.removed(),
                bytes = r.bytes,
                "swept leftovers of interrupted ingests"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not sweep leftovers of interrupted ingests")
            }
        }
    });
    if wait {
        let _ = swept.await; // it removes leftovers of any age: before any ingest starts
    }
    if let Some(pg) = &services.pg {
        // Only stagings older than any live ingest: other replicas may be ingesting now.
        match pg.recover_stale(hydrant_ingest::STALE_STAGING).await {
            Ok(keys) if keys.is_empty() => {}
            Ok(keys) => tracing::info!(
                cars = keys.len(),
                "removed index stagings of interrupted ingests"
            ),
            Err(e) => tracing::warn!(error = %e, "could not remove stale index stagings"),
        }
    }

    let peer_id = repo.keypair.public().to_peer_id();
    let mut swarm = swarm::build(repo.keypair.clone(), &repo.config.swarm).await?;
    let (swarm_addrs, listeners) =
        swarm::listen_all(&mut swarm, &repo.config.swarm.listen, peer_id).await?;
    for addr in &repo.config.swarm.announce {
        swarm.add_external_address(addr.clone());
    }
    let mut bitswap = hydrant_bitswap::Bitswap::spawn(
        swarm.behaviour().stream.new_control(),
        services.blockstore.clone(),
        services.bitswap_config(&repo.config),
    )?;
    let disconnect = bitswap.take_unresponsive_peers();
    let bitswap = Arc::new(bitswap);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let filter_worker = services.filtered.clone().map(|filtered| {
        tokio::spawn(crate::health::run_filter(
            filtered,
            services.pg.clone(),
            Duration::from_millis(repo.config.filter.poll_interval_ms),
            stop_rx.clone(),
        ))
    });
    let (dialer, dials) = hydrant_dht::ChannelDialer::new();
    let connected = services.main_peers.clone();
    let me = ProviderInfo {
        peer: peer_id,
        addrs: dht::provider_addrs(&repo.config.swarm.announce, &swarm_addrs),
    };
    let dht = if repo.config.dht.enabled {
        let main = dht::MainPeer {
            peer_id,
            control: swarm.behaviour().stream.new_control(),
            dialer: dialer.clone(),
            addrs: swarm_addrs.clone(),
            connected: connected.clone(),
        };
        let service = dht::start(&repo, &services, main, stop_rx.clone()).await?;
        for m in &service.members {
            if let Some(i) = m.index {
                tracing::info!(head = i, peer_id = %m.peer_id, addrs = ?m.addrs, "DHT head listening");
            }
        }
        Some(Arc::new(service))
    } else {
        None
    };
    let main_swarm = tokio::spawn(swarm::drive_swarm(
        swarm,
        swarm::SwarmLoop {
            dials,
            dialer,
            connected,
            disconnect,
            stop: stop_rx.clone(),
            drain: drain_rx.clone(),
            listeners,
        },
    ));

    let gateway_listener = bind(repo.config.gateway.listen).await?;
    let api_listener = bind(repo.config.api.listen).await?;
    let info = DaemonInfo {
        peer_id: peer_id.to_string(),
        swarm_addrs: swarm_addrs.iter().map(ToString::to_string).collect(),
        gateway_url: url(&gateway_listener)?,
        api_url: url(&api_listener)?,
        dht_heads: dht
            .iter()
            .flat_map(|d| d.members.iter().filter(|m| m.index.is_some()))
            .flat_map(|m| m.addrs.iter().map(ToString::to_string))
            .collect(),
    };

    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let router = Arc::new(NodeRouter {
        index: services.index.clone(),
        dht: dht.clone(),
        me,
    });
    let gateway_app = crate::http::layer(
        services
            .gateway_router(&repo.config)
            .merge(hydrant_routing::router(router, RoutingConfig::default()))
            .layer(axum::middleware::from_fn_with_state(
                crate::memory::GatewayShare {
                    budget: services.budget.clone(),
                    request_bytes: repo.config.limits.gateway_request_bytes,
                    per_client: Some(crate::slow_clients::ClientLimit::new(
                        repo.config.gateway.max_requests_per_ip,
                    )),
                },
                crate::memory::shed,
            )),
        crate::http::LayerConfig {
            listener: crate::http::Listener::Gateway,
            timeout: Some(Duration::from_secs(
                repo.config.gateway.request_timeout_secs,
            )),
            timeout_exempt: &[],
            timeout_field: "gateway.request_timeout_secs",
        },
        services.http.clone(),
    );
    let gateway_listener = crate::slow_clients::GatewayListener::new(
        gateway_listener,
        Duration::from_secs(repo.config.gateway.write_timeout_secs),
    );
    let gateway = axum::serve(
        gateway_listener,
        gateway_app.into_make_service_with_connect_info::<crate::slow_clients::ClientAddr>(),
    )
    .with_graceful_shutdown(stopped(drain_rx.clone()));
    let api_state = crate::api::ApiState::new(
        services.clone(),
        info.clone(),
        &repo.config,
        dht.clone(),
        bitswap.clone(),
        health.clone(),
    )
    .with_token(api_token);
    let api = axum::serve(api_listener, crate::api::router(api_state))
        .with_graceful_shutdown(stopped(stop_rx));
    let gateway = tokio::spawn(async move { gateway.await });
    let api = tokio::spawn(async move { api.await });

    let json = serde_json::to_string(&info).expect("DaemonInfo serialises");
    write_atomic(&repo.dir.join(API_FILE), json.as_bytes())?;
    println!("{json}");
    tracing::info!(peer_id = %peer_id, gateway = %info.gateway_url, api = %info.api_url, "daemon ready");

    shutdown.await;
    // Drain: not ready, no new connection (swarm listeners and the gateway close), in-flight
    // Bitswap answers get up to drain_timeout_secs; the API keeps answering /readyz meanwhile.
    let drain_timeout = Duration::from_secs(repo.config.shutdown.drain_timeout_secs);
    tracing::info!(timeout = ?drain_timeout, "draining");
    health.start_draining();
    let _ = drain_tx.send(true);
    let deadline = tokio::time::Instant::now() + drain_timeout;
    while bitswap.stats().peers > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!(peers_left = bitswap.stats().peers, "stopping");
    let _ = std::fs::remove_file(repo.dir.join(API_FILE));
    let _ = stop_tx.send(true);
    drop(bitswap);
    drop(dht);
    let _ = main_swarm.await;
    if let Some(worker) = filter_worker {
        let _ = worker.await;
    }
    for (name, task) in [("gateway", gateway), ("api", api)] {
        match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(listener = name, error = %e, "HTTP server error"),
            Ok(Err(e)) => tracing::warn!(listener = name, error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!(listener = name, "in-flight requests did not finish in time"),
        }
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

fn url(listener: &TcpListener) -> Result<String, NodeError> {
    let addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: "0.0.0.0:0".parse().expect("valid"),
        source,
    })?;
    Ok(format!("http://{addr}"))
}
