//! The libp2p swarm: TCP and WebSocket transports, Noise, Yamux, identify, ping, a connection
//! limit, `libp2p-stream` for the protocols Hydrant speaks itself (Bitswap), and on the main
//! swarm GossipSub (`crate::p2p::pubsub`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hydrant_dht::{ChannelDialer, DialRequest, handle_dial_request};
use libp2p::core::transport::ListenerId;
use libp2p::swarm::SwarmEvent;
use tokio::sync::{mpsc, watch};

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, PeerId, Swarm, connection_limits, identify, identity::Keypair, noise, ping, yamux,
};

use crate::config::SwarmConfig;
use crate::p2p::pubsub::gossip::{Driver, Work};

/// The identify protocol version Hydrant reports (the one IPFS implementations use).
pub const PROTOCOL_VERSION: &str = "ipfs/0.1.0";

/// The composed network behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses connections past `swarm.max_connections` and `swarm.max_connections_per_peer`.
    pub limits: connection_limits::Behaviour,
    /// Identify (`/ipfs/id/1.0.0`): tells peers our addresses and protocols.
    pub identify: identify::Behaviour,
    /// Ping (`/ipfs/ping/1.0.0`).
    pub ping: ping::Behaviour,
    /// Streams for Bitswap, handed to the `hydrant-bitswap` service.
    pub stream: libp2p_stream::Behaviour,
    /// GossipSub (main swarm with `[pubsub] enabled`; off on the DHT heads).
    pub gossipsub: Toggle<libp2p::gossipsub::Behaviour>,
}

/// Errors building the swarm or listening.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// A transport could not be built.
    #[error("building the libp2p transport: {0}")]
    Transport(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {detail}")]
    Listen {
        /// The multiaddr.
        addr: Multiaddr,
        /// Why.
        detail: String,
    },
}

/// Builds a swarm without GossipSub for `keypair` with the transports and limits in `config`
/// (the DHT heads' swarms).
///
/// # Errors
/// [`SwarmError::Transport`] when a transport cannot be set up.
pub async fn build(keypair: Keypair, config: &SwarmConfig) -> Result<Swarm<Behaviour>, SwarmError> {
    build_with(keypair, config, None).await
}

/// Builds the swarm for `keypair` with the transports and limits in `config`, and `gossipsub`
/// when given (the main swarm).
///
/// # Errors
/// [`SwarmError::Transport`] when a transport cannot be set up.
pub async fn build_with(
    keypair: Keypair,
    config: &SwarmConfig,
    gossipsub: Option<libp2p::gossipsub::Behaviour>,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let transport_err = |e: &dyn std::fmt::Display| SwarmError::Transport(e.to_string());
    let max = config.max_connections;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport_err(&e))?
        .with_dns()
        .map_err(|e| transport_err(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| transport_err(&e))?
        .with_behaviour(|key| Behaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(max))
                    .with_max_established_per_peer(Some(config.max_connections_per_peer))
                    .with_max_pending_incoming(Some(max.min(256))),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.to_string(), key.public())
                    .with_agent_version(format!("hydrant/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
            gossipsub: Toggle::from(gossipsub),
        })
        .map_err(|e| transport_err(&e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(config.idle_connection_timeout_secs))
        })
        .build();
    Ok(swarm)
}

/// Appends `/p2p/<peer>` to `addr` unless it already ends with it.
pub fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(libp2p::multiaddr::Protocol::P2p(peer)),
    }
}

/// Logs the swarm events worth a line (listening at debug and info, connections at debug).
pub fn log_event(event: &libp2p::swarm::SwarmEvent<BehaviourEvent>) {
    match event {
        SwarmEvent::NewListenAddr { address, .. } => {
            tracing::info!(%address, "listening");
        }
        SwarmEvent::ConnectionEstablished {
            peer_id, endpoint, ..
        } => {
            tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
        }
        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
            tracing::debug!(peer = %peer_id, cause = ?cause, "disconnected");
        }
        SwarmEvent::IncomingConnectionError { error, .. } => {
            tracing::debug!(error = %error, "incoming connection failed");
        }
        _ => {}
    }
}

/// How long listeners may take to report their addresses at start-up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// After every listener reported an address, how long to wait for more: a listener on
/// `0.0.0.0` or `::` reports one address per interface, in a burst.
const MORE_ADDRS_QUIET: Duration = Duration::from_millis(250);

/// Listens on every address, waits until each listener reports at least one bound address,
/// then collects the addresses reported until [`MORE_ADDRS_QUIET`] passes without one (every
/// interface of a wildcard listener, not only the first). Returns the bound addresses and the
/// listeners' IDs.
pub(crate) async fn listen_all(
    swarm: &mut Swarm<Behaviour>,
    addrs: &[Multiaddr],
    peer_id: PeerId,
) -> Result<(Vec<Multiaddr>, Vec<ListenerId>), SwarmError> {
    let mut pending = HashMap::new();
    let mut ids = Vec::new();
    for addr in addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| SwarmError::Listen {
                addr: addr.clone(),
                detail: e.to_string(),
            })?;
        pending.insert(id, addr.clone());
        ids.push(id);
    }
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| SwarmError::Listen {
                addr: pending.values().next().cloned().expect("not empty"),
                detail: "no address reported in time".into(),
            })?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                pending.remove(&listener_id);
                bound.push(with_peer(&address, peer_id));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if pending.contains_key(&listener_id) => {
                return Err(SwarmError::Listen {
                    addr: pending.remove(&listener_id).expect("checked"),
                    detail: format!("{reason:?}"),
                });
            }
            SwarmEvent::ListenerError { listener_id, error }
                if pending.contains_key(&listener_id) =>
            {
                return Err(SwarmError::Listen {
                    addr: pending.remove(&listener_id).expect("checked"),
                    detail: error.to_string(),
                });
            }
            other => log_event(&other),
        }
    }
    while let Ok(Ok(event)) = tokio::time::timeout_at(
        deadline,
        tokio::time::timeout(MORE_ADDRS_QUIET, swarm.select_next_some()),
    )
    .await
    {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let address = with_peer(&address, peer_id);
                if !bound.contains(&address) {
                    bound.push(address);
                }
            }
            other => log_event(&other),
        }
    }
    Ok((bound, ids))
}

/// The peers a swarm is connected to, each with the remote address of its latest connection;
/// its [`drive_swarm`] loop keeps it.
pub type ConnectedPeers = Arc<Mutex<HashMap<PeerId, Multiaddr>>>;

/// What [`drive_swarm`] serves besides the swarm's own events.
pub struct SwarmLoop {
    /// Dial requests from the DHT.
    pub dials: mpsc::Receiver<DialRequest>,
    /// The dialer whose address book identify results fill.
    pub dialer: ChannelDialer,
    /// The connected peers to keep.
    pub connected: ConnectedPeers,
    /// Peers to disconnect (Bitswap peers that stopped reading); `None` for a swarm without
    /// Bitswap.
    pub disconnect: Option<mpsc::Receiver<PeerId>>,
    /// Set to stop the loop.
    pub stop: watch::Receiver<bool>,
    /// Set to close `listeners` (no new inbound connection) while connections keep being
    /// served.
    pub drain: watch::Receiver<bool>,
    /// The listeners `drain` closes.
    pub listeners: Vec<libp2p::core::transport::ListenerId>,
    /// Pub/sub's side of the loop, when the swarm runs GossipSub.
    pub pubsub: Option<Driver>,
}

/// Drives one swarm until `stop` is set: dial requests, identify results into the dialer's
/// address book, the connected peers, disconnections and draining (see [`SwarmLoop`]).
pub async fn drive_swarm(mut swarm: Swarm<Behaviour>, tasks: SwarmLoop) {
    let SwarmLoop {
        mut dials,
        dialer,
        connected,
        disconnect,
        mut stop,
        mut drain,
        mut listeners,
        mut pubsub,
    } = tasks;
    let mut disconnect = disconnect.unwrap_or_else(|| mpsc::channel(1).1);
    if let Some(driver) = &mut pubsub {
        driver.sync_topics(&mut swarm);
    }
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = drain.wait_for(|d| *d), if !listeners.is_empty() => {
                for id in listeners.drain(..) {
                    swarm.remove_listener(id);
                }
            }
            Some(request) = dials.recv() => handle_dial_request(&mut swarm, request),
            Some(peer) = disconnect.recv() => {
                tracing::debug!(%peer, "disconnecting a peer that stopped reading Bitswap answers");
                let _ = swarm.disconnect_peer_id(peer);
            }
            work = next_pubsub_work(&mut pubsub) => {
                if let Some(driver) = &mut pubsub {
                    driver.work(&mut swarm, work);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id, info, ..
                })) => dialer.set_listen_addrs(peer_id, info.listen_addrs),
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    crate::lock(&connected).insert(peer_id, endpoint.get_remote_address().clone());
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                    tracing::debug!(peer = %peer_id, cause = ?cause, "disconnected");
                    crate::lock(&connected).remove(&peer_id);
                    if let Some(driver) = &mut pubsub {
                        driver.on_disconnected(&mut swarm, &peer_id);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => {
                    if let Some(driver) = &mut pubsub {
                        driver.on_event(&mut swarm, event);
                    }
                }
                other => log_event(&other),
            },
        }
    }
    if let Some(driver) = &pubsub {
        driver.close();
    }
}

/// The pub/sub driver's next work; pending forever without pub/sub.
async fn next_pubsub_work(pubsub: &mut Option<Driver>) -> Work {
    match pubsub {
        Some(driver) => driver.next_work().await,
        None => std::future::pending().await,
    }
}
