//! IPNI publishing wired into the node (`[ipni]`): the chain's HTTP routes on the gateway
//! listener (every replica), the writer task (the one replica holding the lease) and one
//! announcer per configured indexer. See `hydrant-ipni-publisher` for the chain itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hydrant_ipni::metadata::{self, Protocol};
use hydrant_ipni_publisher::announce::{AnnounceConfig, announce_to, announce_url};
use hydrant_ipni_publisher::{
    AdSource, DEFAULT_TOPIC, Publisher, PublisherConfig, WriterConfig, run_writer,
};
use libp2p::multiaddr::Protocol as Ma;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

use crate::config::Config;
use crate::stores::services::Services;

/// What the daemon needs to start publishing.
pub(crate) struct IpniSetup<'a> {
    /// The configuration (`[ipni]`, `gateway.public_url`).
    pub config: &'a Config,
    /// The node identity.
    pub keypair: &'a libp2p::identity::Keypair,
    /// The Bitswap provider addresses (without `/p2p`).
    pub provider_addrs: &'a [Multiaddr],
    /// The gateway listener's bound address.
    pub gateway: SocketAddr,
}

/// Starts the writer task and the announcers (none without `ipni.indexers`); they stop with
/// `stop`. Returns the chain's routes over `services` (`GET /ipni/v1/ad/head`,
/// `/ipni/v1/ad/{cid}`), which serve the writer's new heads at once.
pub(crate) fn start(
    services: &Services,
    setup: &IpniSetup<'_>,
    stop: watch::Receiver<bool>,
) -> axum::Router {
    let (config, peer_id) = (setup.config, setup.keypair.public().to_peer_id());
    // Validated at start-up.
    let public = config.gateway.public_multiaddr().ok().flatten();
    let mut addresses: Vec<String> = setup
        .provider_addrs
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut protocols = vec![Protocol::Bitswap];
    if let Some(public) = &public {
        addresses.push(public.to_string());
        protocols.push(Protocol::IpfsGatewayHttp);
    }
    let publisher = Arc::new(Publisher::new(
        services.catalog.clone(),
        services.ipni_state.clone(),
        services.store.clone(),
        PublisherConfig::new(
            setup.keypair.clone(),
            addresses,
            metadata::encode(&protocols),
        ),
        services.ipni_stats.clone(),
    ));
    let (heads, local) = watch::channel(None);
    let source = AdSource::new(
        services.ipni_state.clone(),
        services.store.clone(),
        setup.keypair.clone(),
        DEFAULT_TOPIC.to_owned(),
        config.ipni.cache_bytes,
    )
    .follow_local_writer(local);
    let publish_at = publisher_address(config, public, setup.gateway, peer_id);
    tracing::info!(address = %publish_at, indexers = config.ipni.indexers.len(), "IPNI publisher");
    let addrs = Arc::new(vec![publish_at.to_vec()]);
    for indexer in &config.ipni.indexers {
        let Ok(url) = announce_url(indexer) else {
            continue; // refused by validation
        };
        tokio::spawn(announce_to(
            url,
            addrs.clone(),
            heads.subscribe(),
            AnnounceConfig::default(),
            services.ipni_stats.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(run_writer(
        publisher,
        services.ipni_state.clone(),
        heads,
        Arc::default(),
        WriterConfig {
            poll: Duration::from_millis(config.ipni.poll_interval_ms),
            ..WriterConfig::default()
        },
        stop,
    ));
    hydrant_ipni_publisher::router(source)
}

/// Where indexers fetch the chain, with `/p2p/<peer ID>` appended as go-libipni's httpsender
/// does: `ipni.announce_address`, else the public gateway, else the gateway listener as
/// `/ip4/<ip>/tcp/<port>/http` (an unspecified listen IP becomes loopback; validation requires
/// an explicit address when indexers are set and the gateway listens on every address).
fn publisher_address(
    config: &Config,
    public: Option<Multiaddr>,
    gateway: SocketAddr,
    peer_id: PeerId,
) -> Multiaddr {
    let mut addr = config
        .ipni
        .announce_address
        .clone()
        .or(public)
        .unwrap_or_else(|| {
            let ip = match gateway.ip() {
                ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
                ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
                ip => ip,
            };
            Multiaddr::empty()
                .with(ip.into())
                .with(Ma::Tcp(gateway.port()))
                .with(Ma::Http)
        });
    if !matches!(addr.iter().last(), Some(Ma::P2p(_))) {
        addr.push(Ma::P2p(peer_id));
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_address_falls_back_to_the_gateway_listener() {
        let peer = PeerId::random();
        let mut config = Config::default();
        let gateway: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            publisher_address(&config, None, gateway, peer).to_string(),
            format!("/ip4/127.0.0.1/tcp/8080/http/p2p/{peer}")
        );
        let public: Multiaddr = "/dns/gw.example.net/tcp/443/https".parse().unwrap();
        assert_eq!(
            publisher_address(&config, Some(public), gateway, peer).to_string(),
            format!("/dns/gw.example.net/tcp/443/https/p2p/{peer}")
        );
        config.ipni.announce_address = Some("/ip4/203.0.113.5/tcp/80/http".parse().unwrap());
        assert_eq!(
            publisher_address(&config, None, gateway, peer).to_string(),
            format!("/ip4/203.0.113.5/tcp/80/http/p2p/{peer}")
        );
    }
}
