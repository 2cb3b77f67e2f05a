//! The sections of the node's network side: `[swarm]`, `[gateway]`, `[api]`, `[bitswap]`,
//! `[dht]` and `[providers]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// `[swarm]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmConfig {
    /// Multiaddrs to listen on (TCP and WebSocket). Port 0 picks a free port.
    pub listen: Vec<Multiaddr>,
    /// Extra multiaddrs to announce to peers (e.g. a public address behind NAT).
    pub announce: Vec<Multiaddr>,
    /// Seconds a connection without streams stays open.
    pub idle_connection_timeout_secs: u64,
    /// Most simultaneous connections (inbound and outbound together).
    pub max_connections: u32,
    /// Most simultaneous connections with one peer; more are refused, so one peer cannot
    /// take the connections (and their buffers) of many. 1 to `max_connections`; default 4.
    pub max_connections_per_peer: u32,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/tcp/4002/ws".parse().expect("valid multiaddr"),
            ],
            announce: Vec::new(),
            idle_connection_timeout_secs: 60,
            max_connections: 1024,
            max_connections_per_peer: 4,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the trustless gateway listener. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seconds a request may take until its response head is ready (a CAR body may stream for
    /// longer); past it the answer is 504 with `Retry-After`. 1 to 3600.
    pub request_timeout_secs: u64,
    /// Seconds a response may wait for its client to accept any byte; past it the connection
    /// is closed and the response's memory released (a client that stopped reading). 1 to
    /// 3600; default 30.
    pub write_timeout_secs: u64,
    /// Responses in progress from one client address (an IPv6 /64) at once; more are answered
    /// 429 with `Retry-After`. One address holds at most this many times
    /// `limits.gateway_request_bytes` of the budget. Behind a reverse proxy every client has
    /// the proxy's address: raise it there. 1 to 65536; default 16.
    pub max_requests_per_ip: u32,
    /// Seconds a connection may take to send a request's head (request line and headers),
    /// counted from when the server waits for one: from the connection's start, or from the end
    /// of the previous response on a keep-alive connection, so it is also the idle timeout of a
    /// keep-alive connection. Past it the connection is closed (a slowloris client, an idle
    /// client). 1 to 3600; default 10.
    pub header_read_timeout_secs: u64,
    /// Open connections to this listener; one more is answered 503 with `Retry-After` and
    /// closed. Each takes a file descriptor: see [`Config::descriptors_needed`]. 1 to 1048576;
    /// default 2048.
    pub max_connections: u32,
    /// Open connections from one client address (an IPv6 /64); one more is answered 429 and
    /// closed, so one client cannot take the listener's connections. Behind a reverse proxy
    /// raise it as `max_requests_per_ip`. 1 to `max_connections`; default 128.
    pub max_connections_per_ip: u32,
    /// The URL clients on the network reach this gateway at, e.g. `https://gw.example.net`
    /// (scheme, host and optional port; no path, query or user). When set, routing answers
    /// (Delegated Routing V1, IPNI advertisements) name the gateway as an HTTP provider with
    /// protocol `transport-ipfs-gateway-http` and [`GatewayConfig::public_multiaddr`]. Unset
    /// (the default): the gateway is not advertised.
    pub public_url: Option<String>,
}

impl GatewayConfig {
    /// The multiaddr of [`Self::public_url`] as someguy and IPNI write HTTP providers:
    /// `/dns/<host>/tcp/<port>/https` (or `/ip4`, `/ip6` for an address literal, `/http` for
    /// plain HTTP; the port defaults to 443 or 80). `None` when unset; `Err` with the reason
    /// when the URL is not an absolute `http(s)://host[:port][/]` URL.
    pub fn public_multiaddr(&self) -> Result<Option<libp2p::Multiaddr>, String> {
        let Some(url) = &self.public_url else {
            return Ok(None);
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "not an absolute URL: write it as https://host[:port]".to_string())?;
        let (default_port, tail) = match scheme.to_ascii_lowercase().as_str() {
            "https" => (443u16, "https"),
            "http" => (80u16, "http"),
            other => return Err(format!("scheme {other:?} is neither http nor https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err("the URL has no host".into());
        }
        if authority.contains(['/', '?', '#', '@']) {
            return Err("only scheme, host and port are allowed: no path, query or user".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("an IPv6 host lacks its closing ']'")?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("port {p:?} is not a number from 0 to 65535"))?,
            None => default_port,
        };
        let host_part = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => format!("/ip4/{ip}"),
            Ok(std::net::IpAddr::V6(ip)) => format!("/ip6/{ip}"),
            Err(_)
                if !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                format!("/dns/{}", host.to_ascii_lowercase())
            }
            Err(_) => return Err(format!("host {host:?} is not a DNS name or IP address")),
        };
        format!("{host_part}/tcp/{port}/{tail}")
            .parse()
            .map(Some)
            .map_err(|e| format!("cannot form a multiaddr: {e}"))
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            request_timeout_secs: 60,
            write_timeout_secs: 30,
            max_requests_per_ip: 16,
            header_read_timeout_secs: 10,
            max_connections: 2048,
            max_connections_per_ip: 128,
            public_url: None,
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the admin/ingest API listener. A non-loopback address is refused unless
    /// `token_file` is set: the API can ingest, and `/metrics` describes the node.
    pub listen: SocketAddr,
    /// Largest CAR accepted by `PUT /api/v1/cars`, in bytes.
    pub max_upload_bytes: u64,
    /// A file whose first line is the API's bearer token (at least
    /// [`MIN_API_TOKEN_LEN`] visible ASCII characters), relative to the repository unless
    /// absolute; read once at start-up. With a token, every API request except `GET /healthz`
    /// and `GET /readyz` needs `Authorization: Bearer <token>` (else 401). Empty: no token
    /// (then `listen` must be a loopback address).
    pub token_file: PathBuf,
    /// Seconds a request may take until its response head is ready; past it the answer is 504.
    /// Not applied to ingests (`PUT /api/v1/cars`, `POST /api/v1/cars/index`), which take as
    /// long as the CAR does. 1 to 3600.
    pub request_timeout_secs: u64,
    /// Seconds an upload (`PUT /api/v1/cars`) may go without receiving a byte; past it the
    /// upload ends with 408 and its staging object is removed. A slow upload that keeps moving
    /// is never cut. 1 to 3600; default 30.
    pub upload_idle_timeout_secs: u64,
    /// As `gateway.header_read_timeout_secs`, for this listener. Default 10.
    pub header_read_timeout_secs: u64,
    /// As `gateway.max_connections`, for this listener. Default 256.
    pub max_connections: u32,
    /// As `gateway.max_connections_per_ip`, for this listener (health probes and the CLI share
    /// an address with other clients less often than gateway users). Default 64.
    pub max_connections_per_ip: u32,
}

/// Fewest characters of an API token (`api.token_file`).
pub const MIN_API_TOKEN_LEN: usize = 16;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5001".parse().expect("valid address"),
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            token_file: PathBuf::new(),
            request_timeout_secs: 60,
            upload_idle_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 256,
            max_connections_per_ip: 64,
        }
    }
}

/// `[bitswap]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BitswapConfig {
    /// Most wantlist entries kept per peer; wants past it are ignored.
    pub max_wantlist_entries: usize,
    /// Most bytes of blocks queued or in flight per peer (its share of the memory budget).
    pub max_outstanding_bytes_per_peer: usize,
    /// Most inbound streams read at once over all peers; more are reset.
    pub max_inbound_streams: usize,
    /// Most inbound streams read at once from one peer; more are reset.
    pub max_inbound_streams_per_peer: usize,
    /// Most batches of wants looked up in the store at once.
    pub max_concurrent_lookups: usize,
    /// Seconds an inbound stream may go without a complete message before it is closed.
    pub inbound_idle_timeout_secs: u64,
    /// Seconds to open the outbound stream or write one message; a peer slower than this
    /// (e.g. one that stopped reading) is dropped, its memory released and, on a timeout, its
    /// connection closed.
    pub write_timeout_secs: u64,
    /// Milliseconds the outbound stream stays open without an answer to send (below Helia's
    /// 5 s receive timeout).
    pub outbound_idle_timeout_ms: u64,
}

impl Default for BitswapConfig {
    fn default() -> Self {
        let d = hydrant_bitswap::BitswapConfig::default();
        Self {
            max_wantlist_entries: d.max_wantlist_entries_per_peer,
            max_outstanding_bytes_per_peer: d.max_outstanding_bytes_per_peer,
            max_inbound_streams: d.max_inbound_streams,
            max_inbound_streams_per_peer: d.max_inbound_streams_per_peer,
            max_concurrent_lookups: d.max_concurrent_lookups,
            inbound_idle_timeout_secs: d.inbound_idle_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            outbound_idle_timeout_ms: d.outbound_idle_timeout.as_millis() as u64,
        }
    }
}

/// `[dht]`: the Kademlia DHT server heads and the client side (../shared/specs/kad-dht.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DhtConfig {
    /// Run the DHT at all (heads, routing-table maintenance, announcing roots).
    pub enabled: bool,
    /// DHT server identities ("heads") this process runs, each a libp2p peer on its own port.
    pub heads: u32,
    /// Index of this process's first head within the fleet: its heads are
    /// `first_head .. first_head + heads`.
    pub first_head: u32,
    /// Heads in the whole fleet (all machines); head IDs are spread evenly over the keyspace for
    /// this many. 0 means `heads` (one machine).
    pub fleet_size: u32,
    /// 64 hex characters (32 bytes) from which head identities are derived. Empty: derived from
    /// the node's identity key, so replicas sharing the key share the heads.
    pub seed: String,
    /// IP address the heads listen on.
    pub listen_ip: std::net::IpAddr,
    /// Head `i` of this process listens on TCP port `port_base + i`; 0 picks free ports.
    pub port_base: u16,
    /// Peers to bootstrap the routing table from (multiaddrs ending in `/p2p/<peer ID>`).
    pub bootstrap: Vec<Multiaddr>,
    /// The WAN (`/ipfs/kad/1.0.0`) DHT admits only peers with a public address and passes on
    /// only public addresses of provider records (go-libp2p-kad-dht's dual DHT); `false`: every
    /// address ([`hydrant_dht::AddressPolicy::Any`]), for networks whose peers have only private
    /// addresses and speak only `/ipfs/kad/1.0.0`.
    pub wan_public_only: bool,
    /// Announce (ADD_PROVIDER) the roots of every ingested CAR, and re-announce them every
    /// `reprovide_interval_secs`.
    pub announce_roots: bool,
    /// Announce every block, not just roots (heads answer for every block anyway).
    pub announce_all_blocks: bool,
    /// Seconds between re-announcements (22 h; provider records live 48 h).
    pub reprovide_interval_secs: u64,
}

/// The public IPFS bootstrap peers (as shipped by Kubo).
pub const PUBLIC_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            heads: 4,
            first_head: 0,
            fleet_size: 0,
            seed: String::new(),
            listen_ip: "0.0.0.0".parse().expect("valid address"),
            port_base: 4101,
            bootstrap: PUBLIC_BOOTSTRAP
                .iter()
                .map(|a| a.parse().expect("valid multiaddr"))
                .collect(),
            wan_public_only: true,
            announce_roots: true,
            announce_all_blocks: false,
            reprovide_interval_secs: 22 * 3600,
        }
    }
}

impl DhtConfig {
    /// The fleet size in effect (`fleet_size`, or `heads` when 0).
    pub fn fleet(&self) -> u32 {
        if self.fleet_size == 0 {
            self.heads
        } else {
            self.fleet_size
        }
    }

    /// The configured seed as 32 bytes, or `None` when empty.
    ///
    /// # Errors
    /// A message when the text is not 64 hex characters.
    pub fn seed_bytes(&self) -> Result<Option<[u8; 32]>, String> {
        if self.seed.is_empty() {
            return Ok(None);
        }
        let bytes = hex::decode(&self.seed).map_err(|e| e.to_string())?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Some)
            .map_err(|_| format!("{} bytes, not 32", bytes.len()))
    }
}

/// `[providers]`: the provider-record store (records received by ADD_PROVIDER, 48 h each).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// `"fjall"` (embedded, at `path`), `"memory"` (lost on restart, at most `max_records`) or
    /// `"postgres"` (in the `[index]` database, shared by replicas; needs `index.kind =
    /// "postgres"`).
    pub kind: String,
    /// Directory of the embedded store, relative to the repository unless absolute.
    pub path: PathBuf,
    /// Most records of the memory store.
    pub max_records: usize,
    /// Records waiting to be written; when full, new ADD_PROVIDER records are dropped (counted).
    pub queue_capacity: usize,
    /// Most records written in one batch.
    pub batch_size: usize,
    /// Longest wait before a partial batch is written, milliseconds.
    pub batch_interval_ms: u64,
    /// Seconds between sweeps of expired records.
    pub gc_interval_secs: u64,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            kind: "fjall".into(),
            path: PathBuf::from("providers"),
            max_records: 1_000_000,
            queue_capacity: 65_536,
            batch_size: 1024,
            batch_interval_ms: 100,
            gc_interval_secs: 600,
        }
    }
}
