//! The libp2p swarm: TCP and WebSocket transports, Noise, Yamux, identify, ping, a connection
//! limit, and `libp2p-stream` for the protocols Hydrant speaks itself (Bitswap).

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    Multiaddr, PeerId, Swarm, connection_limits, identify, identity::Keypair, noise, ping, yamux,
};

use crate::config::SwarmConfig;

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

/// Builds the swarm for `keypair` with the transports and limits in `config`.
///
/// # Errors
/// [`SwarmError::Transport`] when a transport cannot be set up.
pub async fn build(keypair: Keypair, config: &SwarmConfig) -> Result<Swarm<Behaviour>, SwarmError> {
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
    use libp2p::swarm::SwarmEvent;
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
