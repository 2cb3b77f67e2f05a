//! The daemon: opens the stores, starts the swarm, Bitswap, the gateway and the API, announces
//! what it bound, and runs until told to stop.
//!
//! [`run`] reads as its steps: apply the overrides and validate, open the stores
//! ([`Services::open`]), clear what an interrupted ingest left ([`recover_interrupted_ingests`]),
//! start the libp2p floor ([`start_p2p`]), bind and serve both HTTP listeners ([`start_http`],
//! with the IPNI publisher when `[ipni]` asks for it),
//! announce readiness, wait for the stop signal, then drain and stop ([`Running::stop`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hydrant_bitswap::BitswapHandle;
use hydrant_dht::ProviderInfo;
use hydrant_routing::RoutingConfig;
use libp2p::{Multiaddr, PeerId};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::NodeError;
use crate::config::Config;
use crate::http::health::Health;
use crate::http::state::{ApiState, ApiToken};
use crate::http::{ConnectionLimits, Listener, memory, serve, slow_clients};
use crate::p2p::dht::{self, DhtService};
use crate::p2p::pubsub::{PubSub, gossip};
use crate::p2p::routing::NodeRouter;
use crate::p2p::swarm;
use crate::repo::{API_FILE, Repo, write_atomic};
use crate::stores::services::Services;

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

impl Overrides {
    /// Writes the overrides into `config` (validate it afterwards).
    fn apply(&self, config: &mut Config) {
        if !self.swarm_listen.is_empty() {
            config.swarm.listen = self.swarm_listen.clone();
        }
        if let Some(addr) = self.gateway_listen {
            config.gateway.listen = addr;
        }
        if let Some(addr) = self.api_listen {
            config.api.listen = addr;
        }
        match self.heads {
            Some(0) => config.dht.enabled = false,
            Some(n) => config.dht.heads = n,
            None => {}
        }
        if let Some(port) = self.dht_port_base {
            config.dht.port_base = port;
        }
        if !self.bootstrap.is_empty() {
            config.dht.bootstrap = self.bootstrap.clone();
        }
    }
}

/// How long in-flight HTTP responses may take to finish after a stop signal.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the daemon on `repo` until `shutdown` completes. Prints the [`DaemonInfo`] line on stdout
/// once every listener is bound, and removes `api.json` on the way out.
///
/// # Errors
/// [`NodeError`] when the configuration is refused, a store cannot be opened or a listener cannot
/// be bound.
pub async fn run(
    mut repo: Repo,
    overrides: Overrides,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    overrides.apply(&mut repo.config);
    repo.config.validate().map_err(NodeError::Config)?;
    let api_token = ApiToken::load(&repo).map_err(NodeError::Config)?;
    let descriptors = crate::descriptors::ensure(&repo.config)?;
    tracing::info!(
        limit = descriptors.limit,
        needed = descriptors.needed,
        "file descriptors"
    );

    let services = Services::open(&repo).await?;
    recover_interrupted_ingests(&services).await;
    let signals = Signals::new();
    let p2p = start_p2p(&repo, &services, &signals).await?;
    let http = start_http(&repo, &services, &p2p, api_token, &signals).await?;

    let json = serde_json::to_string(&http.info).expect("DaemonInfo serialises");
    write_atomic(&repo.dir.join(API_FILE), json.as_bytes())?;
    println!("{json}");
    tracing::info!(
        peer_id = %p2p.peer_id,
        gateway = %http.info.gateway_url,
        api = %http.info.api_url,
        "daemon ready"
    );

    shutdown.await;
    Running { signals, p2p, http }.stop(&repo).await;
    Ok(())
}

/// Removes what interrupted ingests left: stray objects of the store (all of them before any
/// ingest starts when nothing else can be ingesting, see [`hydrant_ingest::SweepConfig`]) and,
/// with PostgreSQL, index stagings older than any live ingest. Failures are logged: a replica
/// that cannot sweep still serves.
async fn recover_interrupted_ingests(services: &Services) {
    let sweep = services.sweep_config(false);
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
}

/// The two stop signals every task watches: `drain` (stop taking new work) comes first, `stop`
/// (end now) after the drain timeout.
struct Signals {
    stop: watch::Sender<bool>,
    drain: watch::Sender<bool>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            stop: watch::channel(false).0,
            drain: watch::channel(false).0,
        }
    }

    /// Completes when `rx` turns true.
    async fn fired(mut rx: watch::Receiver<bool>) {
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

/// The running libp2p floor.
struct P2p {
    peer_id: PeerId,
    /// Bound addresses of the main swarm.
    swarm_addrs: Vec<Multiaddr>,
    bitswap: Arc<BitswapHandle>,
    dht: Option<Arc<DhtService>>,
    /// Our Bitswap peer as a provider (for the Delegated Routing answers).
    me: ProviderInfo,
    main_swarm: JoinHandle<()>,
    /// Pub/sub on the main swarm (`[pubsub] enabled`).
    pubsub: Option<PubSub>,
    /// Pub/sub's fan-out to the other replicas (pub/sub enabled and the index on PostgreSQL).
    pubsub_bus: Option<Arc<hydrant_pg::PubSubBus>>,
    /// Dials from the main swarm (`swarm/connect`).
    dialer: hydrant_dht::ChannelDialer,
}

/// Builds the main swarm and binds `swarm.listen`, starts Bitswap on it, the DHT heads when
/// enabled, and the task that drives the main swarm.
async fn start_p2p(repo: &Repo, services: &Services, signals: &Signals) -> Result<P2p, NodeError> {
    let config = &repo.config;
    let peer_id = repo.keypair.public().to_peer_id();
    let (pubsub, driver, gossipsub) = if config.pubsub.enabled {
        let (pubsub, requests) = PubSub::new(peer_id, &config.pubsub, services.budget.clone());
        let behaviour = gossip::behaviour(&repo.keypair, &config.pubsub, &pubsub)
            .map_err(|e| NodeError::PubSub(e.to_string()))?;
        let driver = gossip::Driver::new(pubsub.clone(), requests);
        (Some(pubsub), Some(driver), Some(behaviour))
    } else {
        (None, None, None)
    };
    let pubsub_bus = match (&pubsub, &services.pg) {
        (Some(pubsub), Some(pg)) => Some(
            crate::p2p::pubsub::replicas::start(pubsub, pg.pool(), config.pubsub.max_message_bytes)
                .await,
        ),
        _ => None,
    };
    let mut swarm = swarm::build_with(repo.keypair.clone(), &config.swarm, gossipsub).await?;
    let (swarm_addrs, listeners) =
        swarm::listen_all(&mut swarm, &config.swarm.listen, peer_id).await?;
    for addr in &config.swarm.announce {
        swarm.add_external_address(addr.clone());
    }
    let mut bitswap = hydrant_bitswap::Bitswap::spawn(
        swarm.behaviour().stream.new_control(),
        services.blockstore.clone(),
        services.bitswap_config(config),
    )?;
    let disconnect = bitswap.take_unresponsive_peers();

    let (dialer, dials) = hydrant_dht::ChannelDialer::new();
    let main_dialer = dialer.clone();
    let connected = services.main_peers.clone();
    let dht = if config.dht.enabled {
        let main = dht::MainPeer {
            peer_id,
            control: swarm.behaviour().stream.new_control(),
            dialer: dialer.clone(),
            addrs: swarm_addrs.clone(),
            connected: connected.clone(),
        };
        let service = dht::start(repo, services, main, signals.stop.subscribe()).await?;
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
            stop: signals.stop.subscribe(),
            drain: signals.drain.subscribe(),
            listeners,
            pubsub: driver,
        },
    ));
    Ok(P2p {
        peer_id,
        me: ProviderInfo {
            peer: peer_id,
            addrs: dht::provider_addrs(&config.swarm.announce, &swarm_addrs),
        },
        swarm_addrs,
        bitswap: Arc::new(bitswap),
        dht,
        main_swarm,
        pubsub,
        pubsub_bus,
        dialer: main_dialer,
    })
}

/// The running HTTP floor.
struct Http {
    info: DaemonInfo,
    health: Arc<Health>,
    /// Builds the presence filter and keeps it current (when `[filter]` is enabled).
    filter_worker: Option<JoinHandle<()>>,
    gateway: JoinHandle<()>,
    api: JoinHandle<()>,
}

/// Binds both listeners and serves them: the gateway (trustless gateway and Delegated Routing,
/// behind the budget share, the per-address cap and the write timeout) and the API. Starts the
/// presence-filter worker whose progress `/readyz` reports.
async fn start_http(
    repo: &Repo,
    services: &Services,
    p2p: &P2p,
    api_token: Option<ApiToken>,
    signals: &Signals,
) -> Result<Http, NodeError> {
    let config = &repo.config;
    let health = Arc::new(Health::new(
        services.store.clone(),
        services.pg.clone(),
        services.filtered.clone(),
    ));
    tokio::spawn(crate::stores::denylists::keep_current(
        services.clone(),
        config.denylist.clone(),
        signals.stop.subscribe(),
    ));
    if config.gc.interval_secs > 0 {
        tokio::spawn(crate::stores::delete::periodic_gc(
            services.clone(),
            Duration::from_secs(config.gc.interval_secs),
            signals.drain.subscribe(),
        ));
    }
    if let Some(pg) = services.pg.clone() {
        tokio::spawn(crate::stores::delete::follow_deletions(
            services.clone(),
            pg,
            Duration::from_millis(config.filter.poll_interval_ms),
            signals.stop.subscribe(),
        ));
    }
    let filter_worker = services.filtered.clone().map(|filtered| {
        tokio::spawn(crate::http::health::run_filter(
            filtered,
            services.pg.clone(),
            Duration::from_millis(config.filter.poll_interval_ms),
            signals.stop.subscribe(),
            services.snapshots.clone(),
        ))
    });

    let gateway_listener = bind(config.gateway.listen).await?;
    let api_listener = bind(config.api.listen).await?;
    let info = DaemonInfo {
        peer_id: p2p.peer_id.to_string(),
        swarm_addrs: p2p.swarm_addrs.iter().map(ToString::to_string).collect(),
        gateway_url: url(&gateway_listener)?,
        api_url: url(&api_listener)?,
        dht_heads: p2p
            .dht
            .iter()
            .flat_map(|d| d.members.iter().filter(|m| m.index.is_some()))
            .flat_map(|m| m.addrs.iter().map(ToString::to_string))
            .collect(),
    };
    let api_state = ApiState::new(
        services.clone(),
        info.clone(),
        config,
        repo.dir.clone(),
        p2p.dht.clone(),
        p2p.bitswap.clone(),
        health.clone(),
    )
    .with_token(api_token)
    .with_pubsub(p2p.pubsub.clone(), p2p.pubsub_bus.clone())
    .with_dialer(p2p.dialer.clone());

    let ipni = crate::http::ipni::IpniSetup {
        config,
        keypair: &repo.keypair,
        provider_addrs: &p2p.me.addrs,
        gateway: gateway_listener
            .local_addr()
            .map_err(|source| NodeError::Bind {
                addr: config.gateway.listen,
                source,
            })?,
    };
    let mut gateway_routes = services.gateway_router(config);
    if config.ipni.publishes() {
        gateway_routes = gateway_routes.merge(crate::http::ipni::start(
            services,
            &ipni,
            signals.stop.subscribe(),
        ));
    }
    let router = Arc::new(NodeRouter {
        index: services.index.clone(),
        dht: p2p.dht.clone(),
        me: p2p.me.clone(),
        // Validated at start-up: an invalid URL never gets here.
        gateway: config.gateway.public_multiaddr().ok().flatten(),
        records: p2p
            .dht
            .as_ref()
            .map(|d| d.records.clone())
            .unwrap_or_default(),
    });
    let gateway_app = crate::http::layer(
        gateway_routes
            .merge(hydrant_routing::router(router, RoutingConfig::default()))
            .layer(axum::middleware::from_fn_with_state(
                services.denylists.clone(),
                crate::http::refuse_denied,
            ))
            .layer(axum::middleware::from_fn_with_state(
                memory::GatewayShare {
                    budget: services.budget.clone(),
                    request_bytes: config.limits.gateway_request_bytes,
                    per_client: Some(slow_clients::ClientLimit::new(
                        config.gateway.max_requests_per_ip,
                    )),
                },
                memory::shed,
            )),
        crate::http::LayerConfig {
            listener: Listener::Gateway,
            timeout: Some(Duration::from_secs(config.gateway.request_timeout_secs)),
            timeout_exempt: &[],
            timeout_field: "gateway.request_timeout_secs",
        },
        api_state.http.clone(),
    );
    let stats = api_state.http.clone();
    let gateway_limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.gateway.header_read_timeout_secs),
        max_connections: config.gateway.max_connections,
        max_connections_per_ip: config.gateway.max_connections_per_ip,
        write_timeout: Some(Duration::from_secs(config.gateway.write_timeout_secs)),
    };
    let api_limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.api.header_read_timeout_secs),
        max_connections: config.api.max_connections,
        max_connections_per_ip: config.api.max_connections_per_ip,
        write_timeout: None,
    };
    let gateway = serve(
        Listener::Gateway,
        gateway_listener,
        gateway_app,
        gateway_limits,
        stats.clone(),
        Signals::fired(signals.drain.subscribe()),
    );
    let api = serve(
        Listener::Api,
        api_listener,
        crate::http::api::router(api_state),
        api_limits,
        stats,
        Signals::fired(signals.stop.subscribe()),
    );
    Ok(Http {
        info,
        health,
        filter_worker,
        gateway: tokio::spawn(gateway),
        api: tokio::spawn(api),
    })
}

/// Everything [`run`] started, stopped in order by [`Running::stop`].
struct Running {
    signals: Signals,
    p2p: P2p,
    http: Http,
}

impl Running {
    /// Drains, then stops: not ready, no new connection (swarm listeners and the gateway
    /// close), in-flight Bitswap answers get up to `shutdown.drain_timeout_secs`, the API keeps
    /// answering `/readyz` meanwhile; then every task stops and `api.json` is removed.
    async fn stop(self, repo: &Repo) {
        let Running { signals, p2p, http } = self;
        let drain_timeout = Duration::from_secs(repo.config.shutdown.drain_timeout_secs);
        tracing::info!(timeout = ?drain_timeout, "draining");
        http.health.start_draining();
        signals.drain.send_replace(true);
        let deadline = tokio::time::Instant::now() + drain_timeout;
        while p2p.bitswap.stats().peers > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(peers_left = p2p.bitswap.stats().peers, "stopping");
        let _ = std::fs::remove_file(repo.dir.join(API_FILE));
        signals.stop.send_replace(true);
        drop(p2p.bitswap);
        drop(p2p.dht);
        let _ = p2p.main_swarm.await;
        if let Some(worker) = http.filter_worker {
            let _ = worker.await;
        }
        for (name, task) in [("gateway", http.gateway), ("api", http.api)] {
            match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(listener = name, error = %e, "HTTP server task failed")
                }
                Err(_) => {
                    tracing::warn!(listener = name, "in-flight requests did not finish in time")
                }
            }
        }
    }
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
