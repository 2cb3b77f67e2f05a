//! [`DhtConfig`], the settings of the service; [`AddressPolicy`], which peers and addresses
//! a service admits and offers (go-libp2p-kad-dht's WAN and LAN rules); and
//! [`REQUEST_CHARGE`], what an inbound request holds of the memory budget.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hydrant_budget::MemoryBudget;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, StreamProtocol};

use crate::kbucket::TableConfig;
use crate::protocol::{LAN_PROTOCOL, MAX_DECODED_BYTES, MAX_FRAME_SIZE, PROTOCOL};
use crate::query::QueryConfig;
#[cfg(doc)]
use crate::{DhtStats, ProviderLookup};

/// Settings of the service. `DhtConfig::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// The protocol served and spoken: [`PROTOCOL`] (default) or [`LAN_PROTOCOL`].
    pub protocol: StreamProtocol,
    /// Which peers enter the routing table and which learned addresses are kept and offered.
    /// Default [`AddressPolicy::Any`].
    pub addresses: AddressPolicy,
    /// Routing-table settings.
    pub table: TableConfig,
    /// Lookup settings (α, k, request timeout, which also bounds probes).
    pub query: QueryConfig,
    /// Most inbound streams served at once per head; more are reset. Default 256.
    pub max_inbound_streams_per_head: usize,
    /// Most inbound streams served at once per peer and head; more are reset. Default 8.
    pub max_inbound_streams_per_peer: usize,
    /// An inbound stream without a request for this long is closed. Default 60 s.
    pub inbound_idle_timeout: Duration,
    /// Deadline of [`ProviderLookup::providers`] per GET_PROVIDERS. Default 2 s.
    pub provider_lookup_deadline: Duration,
    /// Most probes (candidates, liveness) in flight at once. Default 16.
    pub max_concurrent_probes: usize,
    /// How often candidates are taken for probing. Default 1 s.
    pub maintenance_interval: Duration,
    /// How often the liveness checks and bucket refresh run. Default 60 s (each bucket is
    /// refreshed every [`TableConfig::refresh_interval`], each peer checked every
    /// [`TableConfig::liveness_interval`]).
    pub refresh_check_interval: Duration,
    /// Most tries to find a refresh key in a bucket (about 2^(cpl+1) needed; deeper buckets
    /// are covered by the self lookups). Default 2^20.
    pub max_refresh_key_tries: u64,
    /// The memory budget shared with the other serving paths: each inbound request holds
    /// [`REQUEST_CHARGE`] bytes of it until answered; when it is full the stream is reset
    /// (counted in [`DhtStats::inbound_shed`]). Default: unlimited.
    pub budget: MemoryBudget,
}

/// Budget charged per inbound request while it is answered: the request frame and the response
/// frame, each at most [`MAX_FRAME_SIZE`], and what decoding the request allocates, at most
/// [`MAX_DECODED_BYTES`].
pub const REQUEST_CHARGE: u64 = (2 * MAX_FRAME_SIZE + MAX_DECODED_BYTES) as u64;

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            protocol: PROTOCOL,
            addresses: AddressPolicy::Any,
            table: TableConfig::default(),
            query: QueryConfig::default(),
            max_inbound_streams_per_head: 256,
            max_inbound_streams_per_peer: 8,
            inbound_idle_timeout: Duration::from_secs(60),
            provider_lookup_deadline: Duration::from_secs(2),
            max_concurrent_probes: 16,
            maintenance_interval: Duration::from_secs(1),
            refresh_check_interval: Duration::from_secs(60),
            max_refresh_key_tries: 1 << 20,
            budget: MemoryBudget::unlimited(),
        }
    }
}

impl DhtConfig {
    /// The Amino (WAN) side of go-libp2p-kad-dht's dual DHT: [`PROTOCOL`] with
    /// [`AddressPolicy::Public`]; the other settings are the defaults.
    pub fn wan() -> Self {
        DhtConfig {
            addresses: AddressPolicy::Public,
            ..DhtConfig::default()
        }
    }

    /// The LAN side of go-libp2p-kad-dht's dual DHT: [`LAN_PROTOCOL`] with
    /// [`AddressPolicy::Private`] and no IP-diversity limits (go sets its diversity filter on
    /// the WAN side only: on a private network many peers share a /16).
    pub fn lan() -> Self {
        let mut config = DhtConfig {
            protocol: LAN_PROTOCOL,
            addresses: AddressPolicy::Private,
            ..DhtConfig::default()
        };
        config.table.diversity = None;
        config
    }
}

/// Which peers and addresses a service admits and offers: the filters go-libp2p-kad-dht's
/// `dual.New` gives its two DHTs (`dual/dual.go`, `dht_filters.go`).
///
/// Where the service applies it:
/// - *routing table* ([`AddressPolicy::admits`], go's `RoutingTableFilter`): a peer that
///   answered us enters the table only if one of the addresses it was reached at qualifies;
///   a peer that talks to us is probed only if its known addresses qualify;
/// - *lookups* (go's `QueryFilter` and `AddressFilter` on what responses teach): the
///   addresses of closer peers named in answers pass [`AddressPolicy::filter`], and a peer
///   left without any (or, on the WAN, without a public one) is not queried or probed, unless it
///   is the lookup's target;
/// - *provider answers* (go's `AddressFilter` in `handleGetProviders`): the addresses of
///   providers other than the service's own heads pass [`AddressPolicy::filter`].
///
/// Not filtered: the heads' own addresses (go answers for itself with every address of its host,
/// loopback included, on both DHTs) and the routing table's members (admitted by the rule
/// above). ADD_PROVIDER records are stored as sent, because the provider store is shared by both
/// DHTs and the HTTP routing API: each answer filters for its own audience instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressPolicy {
    /// No filter: every peer and address (a single DHT on one network, tests).
    #[default]
    Any,
    /// The WAN DHT: peers with a public, non-relay address (go's `PublicRoutingTableFilter`,
    /// `PublicQueryFilter`); learned addresses kept only when public (`manet.IsPublicAddr`).
    /// A DNS name counts as public (as in `manet.IsPublicAddr`) where go's table filter asks
    /// for a public IP: go checks the peerstore, which holds the resolved address of the
    /// connection, while the service knows the address it dialed (`/dnsaddr/` for the
    /// bootstrap peers).
    Public,
    /// The LAN DHT: peers with a private or loopback, non-relay address (go's
    /// `PrivateRoutingTableFilter` on the address the peer was reached at); learned addresses
    /// kept unless loopback (another host's loopback address names that host, not ours).
    Private,
}

impl AddressPolicy {
    /// Whether a peer reached at `addrs` may enter the routing table.
    pub fn admits(self, addrs: &[Multiaddr]) -> bool {
        let qualifies: fn(&Multiaddr) -> bool = match self {
            AddressPolicy::Any => return true,
            AddressPolicy::Public => is_public,
            AddressPolicy::Private => is_private_ip,
        };
        addrs.iter().any(|a| !is_relay(a) && qualifies(a))
    }

    /// The addresses of `addrs` kept when another peer tells us about them.
    pub fn filter(self, mut addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
        match self {
            AddressPolicy::Any => {}
            AddressPolicy::Public => addrs.retain(is_public),
            AddressPolicy::Private => addrs.retain(|a| !is_loopback(a)),
        }
        addrs
    }

    /// Whether a peer named in an answer, with `addrs` already [filtered](Self::filter), is
    /// worth querying (go's `PublicQueryFilter` / `PrivateQueryFilter`).
    pub fn queries(self, addrs: &[Multiaddr]) -> bool {
        match self {
            AddressPolicy::Any => true,
            AddressPolicy::Public => addrs.iter().any(|a| !is_relay(a) && is_public(a)),
            AddressPolicy::Private => !addrs.is_empty(),
        }
    }
}

/// The first IP of `addr`, if it has one.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

fn is_relay(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// `addr` starts with `prefix` over its first `len` bits.
fn in_v4(ip: Ipv4Addr, prefix: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(prefix)) & mask
}

fn in_v6(ip: Ipv6Addr, prefix: [u16; 8], len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(prefix)) & mask
}

/// go-multiaddr's `manet.Private4`: loopback, RFC 1918, shared (CGNAT) and link-local.
fn private_v4(ip: Ipv4Addr) -> bool {
    [
        ([127, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([169, 254, 0, 0], 16),
    ]
    .iter()
    .any(|&(p, l)| in_v4(ip, p, l))
}

/// `manet.Unroutable4`: "this network", documentation, benchmarking, multicast, reserved.
fn unroutable_v4(ip: Ipv4Addr) -> bool {
    [
        ([0, 0, 0, 0], 8),
        ([192, 0, 0, 0], 26),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ]
    .iter()
    .any(|&(p, l)| in_v4(ip, p, l))
}

/// `manet.Unroutable6`: multicast and documentation.
fn unroutable_v6(ip: Ipv6Addr) -> bool {
    in_v6(ip, [0xff00, 0, 0, 0, 0, 0, 0, 0], 8) || in_v6(ip, [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32)
}

/// go-libp2p-kad-dht's `isPrivateAddr`: an IPv4 address in `manet.Private4` (loopback
/// included), or an IPv6 address outside 2000::/3 and not unroutable (so `::1`, ULA,
/// link-local).
fn is_private_ip(addr: &Multiaddr) -> bool {
    match ip_of(addr) {
        Some(IpAddr::V4(ip)) => private_v4(ip),
        Some(IpAddr::V6(ip)) => !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) && !unroutable_v6(ip),
        None => false,
    }
}

/// `manet.IsPublicAddr`: a public IP (IPv6: global unicast but not documentation, or NAT64),
/// or a DNS name outside `localhost` and the special-use domains.
fn is_public(addr: &Multiaddr) -> bool {
    const NOT_PUBLIC: [&str; 7] = [
        "localhost",
        "in-addr.arpa",
        "ip6.arpa",
        "invalid",
        "home.arpa",
        "local",
        "test",
    ];
    for p in addr.iter() {
        match p {
            Protocol::Ip4(ip) => return !private_v4(ip) && !unroutable_v4(ip),
            Protocol::Ip6(ip) => {
                return (in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) && !unroutable_v6(ip))
                    || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
                    || in_v6(ip, [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48);
            }
            Protocol::Dns(name)
            | Protocol::Dns4(name)
            | Protocol::Dns6(name)
            | Protocol::Dnsaddr(name) => {
                let name = name.trim_end_matches('.');
                return !NOT_PUBLIC
                    .iter()
                    .any(|d| name == *d || name.ends_with(&format!(".{d}")));
            }
            _ => {}
        }
    }
    false
}

/// `manet.IsIPLoopback`: 127.0.0.0/8 or `::1`.
fn is_loopback(addr: &Multiaddr) -> bool {
    ip_of(addr).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn wan_admits_public_peers_and_keeps_public_addresses() {
        let p = AddressPolicy::Public;
        assert!(p.admits(&addrs(&["/ip4/10.0.0.1/tcp/1", "/ip4/8.8.8.8/tcp/1"])));
        assert!(p.admits(&addrs(&["/ip6/2604:1380::1/tcp/1"])));
        for private in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/192.168.1.2/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/203.0.113.9/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/dns4/localhost/tcp/1",
            "/ip4/8.8.8.8/tcp/1/p2p-circuit",
        ] {
            assert!(!p.admits(&addrs(&[private])), "{private}");
        }
        let kept = p.filter(addrs(&[
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/8.8.8.8/tcp/1",
            "/dns4/example.com/tcp/1",
            "/dns4/box.local/tcp/1",
            "/ip4/172.20.0.3/tcp/1",
        ]));
        assert_eq!(
            kept,
            addrs(&["/ip4/8.8.8.8/tcp/1", "/dns4/example.com/tcp/1"])
        );
        assert!(p.admits(&addrs(&["/dnsaddr/bootstrap.libp2p.io"])));
        assert!(!p.queries(&addrs(&["/ip4/10.0.0.1/tcp/1"])));
    }

    #[test]
    fn lan_admits_private_and_loopback_peers_and_drops_learned_loopback() {
        let p = AddressPolicy::Private;
        for private in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/172.31.0.1/tcp/1",
            "/ip4/169.254.0.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
        ] {
            assert!(p.admits(&addrs(&[private])), "{private}");
        }
        for other in [
            "/ip4/8.8.8.8/tcp/1",
            "/ip4/172.32.0.1/tcp/1",
            "/ip6/2604:1380::1/tcp/1",
            "/ip6/ff02::1/tcp/1",
            "/ip4/10.0.0.1/tcp/1/p2p-circuit",
        ] {
            assert!(!p.admits(&addrs(&[other])), "{other}");
        }
        let kept = p.filter(addrs(&[
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.0.0.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip4/8.8.8.8/tcp/1",
        ]));
        assert_eq!(kept, addrs(&["/ip4/10.0.0.1/tcp/1", "/ip4/8.8.8.8/tcp/1"]));
        assert!(!p.queries(&[]));
    }

    #[test]
    fn any_keeps_everything() {
        let all = addrs(&["/ip4/127.0.0.1/tcp/1", "/ip4/8.8.8.8/tcp/1"]);
        assert!(AddressPolicy::Any.admits(&all[..1]));
        assert_eq!(AddressPolicy::Any.filter(all.clone()), all);
    }
}
