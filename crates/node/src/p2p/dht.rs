//! The DHT side of a node: head swarms, the shared `hydrant-dht` service, and the adapters that
//! answer it from Hydrant's own stores.
//!
//! ```text
//!   head 0 swarm ─┐   hydrant_dht::Dht WAN ──┐   ┌─ LocalProviders: block index (-> our Bitswap peer)
//!   head 1 swarm ─┤   /ipfs/kad/1.0.0        ├───┤                  + provider store
//!   ...           ├─  (public peers)         │   ├─ WriterSink -> ProviderWriter (bounded) -> store
//!   main swarm  ──┘   hydrant_dht::Dht LAN ──┘   └─ RecordValues -> RecordStore (IPNS, /pk/)
//!                     /ipfs/lan/kad/1.0.0 (private peers)
//! ```
//!
//! Every member serves both protocols, as Kubo's dual DHT does (go-libp2p-kad-dht `dual`): the
//! WAN service ([`hydrant_dht::DhtConfig::wan`]) admits peers with public addresses, the LAN one
//! ([`hydrant_dht::DhtConfig::lan`]) peers with private or loopback addresses; each has its own
//! routing table and counters, and both answer from the same stores. Lookups ask both and merge
//! the answers (go's `FindProvidersAsync`, `FindPeer`), announcements go through both (go's
//! dual `SweepingProvider`), bootstrap runs on both (go's `Bootstrap`).
//!
//! Head `i` of the fleet gets the identity `hydrant_dht::head_keypair(seed, i, fleet)`:
//! the same IDs after a restart, balanced over the keyspace, and disjoint ranges of one fleet on
//! several machines. The main (Bitswap) swarm joins the service as one more member so that
//! ADD_PROVIDER for our own content is sent by the peer that serves it (kad-dht.md, "Content
//! Provider Advertisement": the provider must be the sender).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::BoxStream;
use hydrant_dht::{
    ChannelDialer, DhtError, DhtHandle, HeadHandle, LookupError, PeerInfo, ProviderInfo,
    ProviderLookup, ProviderSink, ValueStore,
};
use hydrant_index::{BlockLookup, CarCatalog, Multihash};
use hydrant_providers::{
    GcHandle, ProviderRecord, ProviderStore, ProviderWriter, WriterConfig, unix_now,
};
use hydrant_records::RecordStore;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::Digest;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::SwarmConfig;
use crate::p2p::swarm::{self, ConnectedPeers};
use crate::{NodeError, repo::Repo};

/// Most providers taken from the provider store for one key.
const MAX_STORED_PROVIDERS: usize = 20;
/// Roots waiting to be announced; more are dropped (the next reprovide pass covers them).
const ANNOUNCE_QUEUE: usize = 4096;
/// Announcements (each a DHT walk plus up to 20 ADD_PROVIDER) running at once.
const ANNOUNCE_CONCURRENCY: usize = 8;
/// Delay before the first bootstrap and reprovide pass, so listeners are up.
const START_DELAY: Duration = Duration::from_secs(1);
/// How often an empty routing table is bootstrapped again.
const REBOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);

/// A member of the DHT service: a head or the main peer.
#[derive(Debug, Clone)]
pub struct Member {
    /// Fleet index of the head; `None` for the main (Bitswap) peer.
    pub index: Option<u32>,
    /// Its peer ID.
    pub peer_id: PeerId,
    /// Addresses it listens on, each ending in `/p2p/<peer ID>`.
    pub addrs: Vec<Multiaddr>,
    /// Peers currently connected to it.
    pub connected: ConnectedPeers,
}

impl Member {
    /// The connected peers, sorted.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = crate::lock(&self.connected).keys().copied().collect();
        peers.sort();
        peers
    }
}

/// Counters of the announcer.
#[derive(Debug, Default)]
pub struct AnnounceStats {
    /// Keys announced to at least one peer.
    pub announced: std::sync::atomic::AtomicU64,
    /// Keys whose announcement reached no peer (e.g. empty routing table).
    pub failed: std::sync::atomic::AtomicU64,
    /// Keys dropped because the announce queue was full.
    pub dropped: std::sync::atomic::AtomicU64,
}

/// Which of the two DHTs: the label of its metrics and API entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Amino DHT, `/ipfs/kad/1.0.0`, public peers.
    Wan,
    /// The LAN DHT, `/ipfs/lan/kad/1.0.0`, private and loopback peers.
    Lan,
}

impl Side {
    /// `"wan"` or `"lan"`.
    pub fn label(self) -> &'static str {
        match self {
            Side::Wan => "wan",
            Side::Lan => "lan",
        }
    }
}

/// The running DHT of a node. Dropping it stops every task.
pub struct DhtService {
    /// The Amino (WAN) service.
    pub wan: Arc<DhtHandle>,
    /// The LAN service, over the same members and stores.
    pub lan: Arc<DhtHandle>,
    /// The heads, then the main peer.
    pub members: Vec<Member>,
    /// The bounded write path of the provider store.
    pub writer: ProviderWriter,
    /// The provider store.
    pub store: Arc<dyn ProviderStore>,
    /// Expired-record sweeps.
    pub gc: GcHandle,
    /// Announcer counters.
    pub announce_stats: Arc<AnnounceStats>,
    /// Our Bitswap peer as a provider: its ID and the addresses put in provider records
    /// (those of [`provider_addrs`], then the gateway's `gateway.public_url` multiaddr when
    /// set: see [`start`]).
    pub self_provider: ProviderInfo,
    /// The DHT value records (IPNS, `/pk/`) the heads serve GET_VALUE from and PUT_VALUE
    /// into; the routing API's IPNS endpoints share it. In memory, one per process: replicas
    /// do not share it.
    pub records: RecordStore,
    announce_tx: mpsc::Sender<Vec<u8>>,
    all_blocks: Option<Arc<dyn ObjectStore>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DhtService {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DhtService {
    /// Both services with their labels, WAN first.
    pub fn sides(&self) -> [(Side, &Arc<DhtHandle>); 2] {
        [(Side::Wan, &self.wan), (Side::Lan, &self.lan)]
    }

    /// Providers of `key` (a multihash) from both DHTs, merged without duplicates (go's dual
    /// `FindProvidersAsync`), at most `limit`.
    ///
    /// # Errors
    /// A [`DhtError`] when neither DHT could answer ([`DhtError::NoPeers`] when both tables
    /// are empty and nothing is known locally).
    pub async fn get_providers(
        &self,
        key: &[u8],
        limit: usize,
    ) -> Result<Vec<ProviderInfo>, DhtError> {
        let (wan, lan) = tokio::join!(
            self.wan.get_providers(key, Some(limit)),
            self.lan.get_providers(key, Some(limit))
        );
        let mut found = both(wan, lan)?;
        dedup_by_peer(&mut found, |p| p.peer);
        found.truncate(limit);
        Ok(found)
    }

    /// [`DhtService::get_providers`] as a stream ([`DhtHandle::provider_stream`] of both
    /// DHTs, interleaved as they find them): each peer once, at most `limit`. A DHT with an
    /// empty table adds nothing ([`DhtError::NoPeers`] is dropped).
    ///
    /// # Errors
    /// [`DhtError::InvalidKey`] (empty or over 80 bytes), before any lookup.
    pub fn provider_stream(
        &self,
        key: &[u8],
        limit: usize,
    ) -> Result<BoxStream<'static, Result<ProviderInfo, DhtError>>, DhtError> {
        let (wan, lan) = (
            self.wan.provider_stream(key, limit)?,
            self.lan.provider_stream(key, limit)?,
        );
        let mut seen = std::collections::HashSet::new();
        Ok(futures::stream::select(wan, lan)
            .filter(move |r| {
                futures::future::ready(match r {
                    Ok(p) => seen.insert(p.peer),
                    Err(e) => !matches!(e, DhtError::NoPeers),
                })
            })
            .take(limit)
            .boxed())
    }

    /// The closest peers to `key` found by both DHTs (go's dual `FindPeer` asks both).
    ///
    /// # Errors
    /// As [`DhtService::get_providers`].
    pub async fn find_node(&self, key: &[u8]) -> Result<Vec<PeerInfo>, DhtError> {
        let (wan, lan) = tokio::join!(self.wan.find_node(key), self.lan.find_node(key));
        let mut found = both(wan, lan)?;
        dedup_by_peer(&mut found, |p| p.peer);
        Ok(found)
    }

    /// Queues `keys` (multihash bytes) for announcement from the main peer. Never waits: when
    /// the queue is full the key is dropped and counted (the periodic reprovide covers it).
    pub fn announce(&self, keys: impl IntoIterator<Item = Vec<u8>>) {
        for key in keys {
            if self.announce_tx.try_send(key).is_err() {
                self.announce_stats
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Queues the roots of an ingested CAR (CID strings as in the CAR header), and with
    /// `dht.announce_all_blocks` every block of the stored CAR `car_key` (read back from the
    /// object store in the background, waiting for room in the queue).
    pub fn announce_car(&self, car_key: &str, roots: &[String]) {
        self.announce(
            roots
                .iter()
                .filter_map(|r| r.parse::<cid::Cid>().ok().map(|cid| cid.hash().to_bytes())),
        );
        if let Some(objects) = &self.all_blocks {
            let (objects, key) = (objects.clone(), car_key.to_string());
            let tx = self.announce_tx.clone();
            tokio::spawn(async move {
                if let Err(e) = queue_car_blocks(&*objects, &key, &tx).await {
                    tracing::warn!(car = %key, error = %e, "announcing the blocks of a CAR failed");
                }
            });
        }
    }
}

/// The answers of both DHTs concatenated, WAN first; an error only when both failed (the one
/// that is not [`DhtError::NoPeers`], as go's `combineErrors` prefers).
fn both<T>(
    wan: Result<Vec<T>, DhtError>,
    lan: Result<Vec<T>, DhtError>,
) -> Result<Vec<T>, DhtError> {
    match (wan, lan) {
        (Ok(mut a), Ok(b)) => {
            a.extend(b);
            Ok(a)
        }
        (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a),
        (Err(DhtError::NoPeers), Err(e)) | (Err(e), Err(_)) => Err(e),
    }
}

/// Keeps the first entry of each peer.
fn dedup_by_peer<T>(list: &mut Vec<T>, peer: impl Fn(&T) -> PeerId) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|x| seen.insert(peer(x)));
}

/// Queues the multihash of every block of the stored CAR `key` for announcement; returns how
/// many. Reads the CAR as a stream (bounded memory); waits when the queue is full.
///
/// # Errors
/// A message when the object cannot be read or is not a valid CAR.
pub async fn queue_car_blocks(
    objects: &dyn ObjectStore,
    key: &str,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<u64, String> {
    use futures::TryStreamExt;
    let object = objects
        .get(&object_store::path::Path::from(key))
        .await
        .map_err(|e| e.to_string())?;
    let stream = object.into_stream().map_err(std::io::Error::other);
    let mut reader = hydrant_car::CarReader::new(
        tokio_util::io::StreamReader::new(stream),
        hydrant_car::Limits::default(),
    );
    let mut queued = 0;
    while let Some(event) = reader.next_event().await.map_err(|e| e.to_string())? {
        if let hydrant_car::Event::Section(section) = event {
            if tx.send(section.cid.hash().to_bytes()).await.is_err() {
                break;
            }
            queued += 1;
        }
    }
    Ok(queued)
}

/// The derived DHT seed: the configured one, or SHA-256 of a fixed label and the identity key's
/// protobuf encoding (so replicas sharing the identity share the heads).
fn seed(repo: &Repo) -> Result<[u8; 32], NodeError> {
    if let Some(seed) = repo.config.dht.seed_bytes().map_err(|reason| {
        NodeError::Config(crate::config::ConfigError {
            field: "dht.seed",
            value: repo.config.dht.seed.clone(),
            reason,
        })
    })? {
        return Ok(seed);
    }
    let key = repo
        .keypair
        .to_protobuf_encoding()
        .map_err(|e| NodeError::Dht(format!("encoding the identity key: {e}")))?;
    let mut h = sha2::Sha256::new();
    h.update(b"hydrant-dht-seed-v1");
    h.update(&key);
    Ok(h.finalize().into())
}

/// Opens the provider store named by `[providers]` (`pg`: the index's PostgreSQL pool, for
/// `kind = "postgres"`).
fn open_store(
    repo: &Repo,
    pg: Option<hydrant_pg::PgPool>,
) -> Result<Arc<dyn ProviderStore>, NodeError> {
    let c = &repo.config.providers;
    Ok(match c.kind.as_str() {
        "memory" => Arc::new(hydrant_providers::MemoryProviderStore::new(c.max_records)),
        "postgres" => Arc::new(hydrant_pg::PgProviderStore::new(pg.ok_or_else(|| {
            NodeError::Dht("providers.kind = \"postgres\" needs index.kind = \"postgres\"".into())
        })?)),
        _ => {
            let dir = repo.dir.join(&c.path);
            Arc::new(
                hydrant_providers::FjallProviderStore::open(&dir).map_err(|e| {
                    NodeError::Index {
                        what: format!("provider store at {}", dir.display()),
                        detail: e.to_string(),
                    }
                })?,
            )
        }
    })
}

/// What [`start`] needs of the main (Bitswap) swarm.
pub struct MainPeer {
    /// The main swarm's peer ID.
    pub peer_id: PeerId,
    /// Its stream control (the DHTs register `/ipfs/kad/1.0.0` and `/ipfs/lan/kad/1.0.0` on it).
    pub control: libp2p_stream::Control,
    /// Its dialer (the daemon's swarm loop serves the matching receiver).
    pub dialer: ChannelDialer,
    /// The addresses it listens on (with `/p2p/`).
    pub addrs: Vec<Multiaddr>,
    /// Its connected peers, kept by the daemon's swarm loop.
    pub connected: ConnectedPeers,
}

/// Starts the heads, the DHT service, the provider store's writer and GC, bootstrap, the
/// announcer and the reprovider.
///
/// # Errors
/// [`NodeError`] when a head cannot be derived, built or bound, or a store cannot be opened.
pub async fn start(
    repo: &Repo,
    services: &crate::stores::services::Services,
    main: MainPeer,
    stop: watch::Receiver<bool>,
) -> Result<DhtService, NodeError> {
    let config = &repo.config;
    let d = &config.dht;
    let seed = seed(repo)?;
    let mut tasks = Vec::new();
    let mut members = Vec::new();
    let mut handles = Vec::new();
    for i in d.first_head..d.first_head + d.heads {
        let keypair = hydrant_dht::head_keypair(&seed, i, d.fleet())
            .map_err(|e| NodeError::Dht(format!("deriving head {i}: {e}")))?;
        let peer_id = keypair.public().to_peer_id();
        let port = if d.port_base == 0 {
            0
        } else {
            d.port_base + (i - d.first_head) as u16
        };
        let ip = match d.listen_ip {
            std::net::IpAddr::V4(ip) => Protocol::Ip4(ip),
            std::net::IpAddr::V6(ip) => Protocol::Ip6(ip),
        };
        let swarm_config = SwarmConfig {
            listen: vec![Multiaddr::empty().with(ip).with(Protocol::Tcp(port))],
            ..config.swarm.clone()
        };
        let mut head = swarm::build(keypair, &swarm_config).await?;
        let (addrs, _) =
            crate::p2p::swarm::listen_all(&mut head, &swarm_config.listen, peer_id).await?;
        let (dialer, dials) = ChannelDialer::new();
        let connected = ConnectedPeers::default();
        handles.push(HeadHandle {
            peer_id,
            control: head.behaviour().stream.new_control(),
            dialer: Arc::new(dialer.clone()),
            addrs: without_p2p(&addrs),
        });
        members.push(Member {
            index: Some(i),
            peer_id,
            addrs,
            connected: connected.clone(),
        });
        tasks.push(tokio::spawn(crate::p2p::swarm::drive_swarm(
            head,
            crate::p2p::swarm::SwarmLoop {
                dials,
                dialer,
                connected,
                disconnect: None,
                stop: stop.clone(),
                drain: stop.clone(),
                listeners: Vec::new(),
                pubsub: None,
            },
        )));
    }
    handles.push(HeadHandle {
        peer_id: main.peer_id,
        control: main.control,
        dialer: Arc::new(main.dialer),
        addrs: without_p2p(&main.addrs),
    });
    let self_addrs = provider_addrs(&config.swarm.announce, &main.addrs);
    members.push(Member {
        index: None,
        peer_id: main.peer_id,
        addrs: main.addrs,
        connected: main.connected,
    });
    // With a public gateway URL our provider records also carry its HTTP multiaddr, so DHT
    // clients that fetch over HTTP (boxo's HTTP retrieval, Helia's trustless-gateway broker)
    // find the gateway too. Safe for the others: the address is a registered multiaddr that
    // go-libp2p, js-libp2p and rust-libp2p parse, and each skips an address it has no
    // transport for. It comes last, so a cut to the per-peer address limit drops it first.
    let mut self_addrs = self_addrs;
    if let Ok(Some(http)) = config.gateway.public_multiaddr() {
        self_addrs.push(http);
    }
    let self_provider = ProviderInfo {
        peer: main.peer_id,
        addrs: self_addrs,
    };

    let store = open_store(repo, services.pg.as_ref().map(|pg| pg.pool().clone()))?;
    let p = &config.providers;
    let (writer, writer_task) = ProviderWriter::spawn(
        store.clone(),
        WriterConfig {
            queue_capacity: p.queue_capacity,
            batch_size: p.batch_size,
            batch_interval: Duration::from_millis(p.batch_interval_ms),
        },
    );
    tasks.push(tokio::spawn(async move {
        let _ = writer_task.await;
    }));
    let (gc, gc_task) = hydrant_providers::spawn_gc(
        store.clone(),
        Duration::from_secs(p.gc_interval_secs),
        hydrant_providers::MAX_GC_BATCH,
    );
    tasks.push(gc_task);
    let records = RecordStore::default();

    let lookup = Arc::new(LocalProviders {
        index: services.index.clone(),
        store: store.clone(),
        self_provider: self_provider.clone(),
    });
    let sink: Arc<dyn ProviderSink> = Arc::new(WriterSink(writer.clone()));
    let values: Arc<dyn ValueStore> = Arc::new(RecordValues(records.clone()));
    let spawn = |config: hydrant_dht::DhtConfig, heads: Vec<HeadHandle>| {
        hydrant_dht::Dht::spawn(
            hydrant_dht::DhtConfig {
                budget: services.budget.clone(),
                ..config
            },
            heads,
            lookup.clone(),
            sink.clone(),
            values.clone(),
        )
        .map(Arc::new)
        .map_err(|e| NodeError::Dht(e.to_string()))
    };
    let mut wan_config = hydrant_dht::DhtConfig::wan();
    if !d.wan_public_only {
        wan_config.addresses = hydrant_dht::AddressPolicy::Any;
    }
    let wan_policy = wan_config.addresses;
    let wan = spawn(wan_config, handles.clone())?;
    let lan = spawn(hydrant_dht::DhtConfig::lan(), handles)?;

    let announce_stats = Arc::new(AnnounceStats::default());
    let (announce_tx, announce_rx) = mpsc::channel(ANNOUNCE_QUEUE);
    tasks.push(tokio::spawn(announcer(
        [wan.clone(), lan.clone()],
        self_provider.clone(),
        announce_rx,
        announce_stats.clone(),
        services.denylists.clone(),
    )));
    let bootstrap: Vec<(PeerId, Vec<Multiaddr>)> = d
        .bootstrap
        .iter()
        .filter_map(|a| match a.iter().last() {
            Some(Protocol::P2p(peer)) => Some((peer, vec![a.clone()])),
            _ => None,
        })
        .collect();
    let all_blocks = d.announce_all_blocks.then(|| services.store.clone());
    // Each side is bootstrapped from the peers its table could admit.
    let sides = [
        (Side::Wan, wan.clone(), wan_policy),
        (
            Side::Lan,
            lan.clone(),
            hydrant_dht::DhtConfig::lan().addresses,
        ),
    ]
    .map(|(side, dht, policy)| {
        let peers = bootstrap
            .iter()
            .filter(|(_, addrs)| policy.admits(addrs))
            .cloned()
            .collect();
        (side, dht, peers)
    });
    tasks.push(tokio::spawn(reprovider(
        sides,
        services.catalog.clone(),
        all_blocks.clone(),
        announce_tx.clone(),
        d.announce_roots,
        Duration::from_secs(d.reprovide_interval_secs),
    )));

    Ok(DhtService {
        wan,
        lan,
        members,
        writer,
        store,
        gc,
        announce_stats,
        self_provider,
        records,
        announce_tx,
        all_blocks,
        tasks,
    })
}

/// The addresses put in our provider records: `swarm.announce` when set, else the bound ones
/// (without `/p2p/`, as records carry the peer ID separately).
pub fn provider_addrs(announce: &[Multiaddr], bound: &[Multiaddr]) -> Vec<Multiaddr> {
    let source = if announce.is_empty() { bound } else { announce };
    source
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
                a.pop();
            }
            a
        })
        .collect()
}

/// Announces queued keys from the main peer through both DHTs, [`ANNOUNCE_CONCURRENCY`] keys
/// at a time; a key counts as announced when either DHT reached a peer.
async fn announcer(
    dhts: [Arc<DhtHandle>; 2],
    me: ProviderInfo,
    rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<AnnounceStats>,
    denylists: Arc<crate::stores::denylists::Denylists>,
) {
    tokio_stream_from(rx)
        .for_each_concurrent(ANNOUNCE_CONCURRENCY, |key| {
            let (dhts, me, stats) = (dhts.clone(), me.clone(), stats.clone());
            // A denied block is never announced.
            let denied = hydrant_index::Multihash::from_bytes(&key)
                .is_ok_and(|mh| denylists.check_multihash(&mh).is_some());
            async move {
                if denied {
                    return;
                }
                let provide = |dht: &Arc<DhtHandle>| {
                    let (dht, key, me) = (dht.clone(), key.clone(), me.clone());
                    async move {
                        match dht.provide_as(me.peer, &key, me.addrs).await {
                            Ok(n) => n,
                            // An empty table (the LAN side on a public network) is routine.
                            Err(DhtError::NoPeers) => 0,
                            Err(e) => {
                                tracing::debug!(protocol = %dht.protocol(), error = %e, "announce failed");
                                0
                            }
                        }
                    }
                };
                let (wan, lan) = tokio::join!(provide(&dhts[0]), provide(&dhts[1]));
                let counter = if wan + lan > 0 {
                    &stats.announced
                } else {
                    &stats.failed
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A DHT with the bootstrap peers its table could admit.
type BootstrapSide = (Side, Arc<DhtHandle>, Vec<(PeerId, Vec<Multiaddr>)>);

/// Bootstraps both sides (each again every [`REBOOTSTRAP_INTERVAL`] while its table is empty),
/// and when `announce_roots` runs a [`reprovide_pass`] at start and every `interval`, so
/// records never expire while Hydrant holds the content.
async fn reprovider(
    sides: [BootstrapSide; 2],
    catalog: Arc<dyn CarCatalog>,
    all_blocks: Option<Arc<dyn ObjectStore>>,
    announce: mpsc::Sender<Vec<u8>>,
    announce_roots: bool,
    interval: Duration,
) {
    tokio::time::sleep(START_DELAY).await;
    futures::future::join_all(sides.iter().map(|(side, dht, peers)| async move {
        let admitted = dht.bootstrap(peers.clone()).await;
        tracing::info!(
            dht = side.label(),
            bootstrap_peers = peers.len(),
            admitted,
            routing_table = dht.routing_table().len(),
            "DHT bootstrapped"
        );
    }))
    .await;
    let mut tick = tokio::time::interval(REBOOTSTRAP_INTERVAL);
    let mut next_pass = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        // An empty table cannot refresh itself (e.g. the network was down at start).
        for (side, dht, peers) in &sides {
            if dht.routing_table().is_empty() && !peers.is_empty() {
                let admitted = dht.bootstrap(peers.clone()).await;
                tracing::info!(
                    dht = side.label(),
                    admitted,
                    "DHT routing table was empty: bootstrapped again"
                );
            }
        }
        if !announce_roots || tokio::time::Instant::now() < next_pass {
            continue;
        }
        next_pass += interval;
        match reprovide_pass(&*catalog, all_blocks.as_deref(), &announce).await {
            Some(queued) => tracing::info!(keys = queued, "reprovide pass queued"),
            None => return,
        }
    }
}

/// Queues the roots (or with `all_blocks` every block) of every committed CAR; returns how many
/// keys, or `None` when the announcer is gone. Waits when the queue is full: background work.
async fn reprovide_pass(
    catalog: &dyn CarCatalog,
    all_blocks: Option<&dyn ObjectStore>,
    announce: &mpsc::Sender<Vec<u8>>,
) -> Option<u64> {
    let mut after: Option<String> = None;
    let mut queued = 0u64;
    loop {
        let page = match catalog.list_cars(after.as_deref(), 1000).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reprovide: listing CARs failed");
                return Some(queued);
            }
        };
        let Some(last) = page.last() else {
            return Some(queued);
        };
        after = Some(last.key.clone());
        for car in &page {
            if let Some(objects) = all_blocks {
                match queue_car_blocks(objects, &car.key, announce).await {
                    Ok(n) => queued += n,
                    Err(e) => tracing::warn!(car = %car.key, error = %e, "reprovide failed"),
                }
                continue;
            }
            for root in &car.roots {
                if let Ok(cid) = root.parse::<cid::Cid>() {
                    announce.send(cid.hash().to_bytes()).await.ok()?;
                    queued += 1;
                }
            }
        }
    }
}

/// `addrs` without their `/p2p/<peer ID>` part, as a DHT answer lists a peer's addresses.
fn without_p2p(addrs: &[Multiaddr]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .map(|a| {
            a.iter()
                .filter(|p| !matches!(p, Protocol::P2p(_)))
                .collect()
        })
        .collect()
}

/// GET_PROVIDERS answers from Hydrant's data: our Bitswap peer for every block in the index,
/// then the provider store's live records that still have addresses.
struct LocalProviders {
    index: Arc<dyn BlockLookup>,
    store: Arc<dyn ProviderStore>,
    self_provider: ProviderInfo,
}

#[async_trait::async_trait]
impl ProviderLookup for LocalProviders {
    async fn providers(&self, key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError> {
        local_providers(&*self.index, &*self.store, &self.self_provider, key).await
    }
}

/// See [`LocalProviders`]; shared with the delegated routing API.
///
/// # Errors
/// [`LookupError`] when the index or the provider store cannot answer (never "not found").
pub async fn local_providers(
    index: &dyn BlockLookup,
    store: &dyn ProviderStore,
    me: &ProviderInfo,
    key: &[u8],
) -> Result<Vec<ProviderInfo>, LookupError> {
    let mut out = Vec::new();
    if let Ok(mh) = Multihash::from_bytes(key)
        && index
            .contains(&mh)
            .await
            .map_err(|e| LookupError(e.to_string()))?
    {
        out.push(me.clone());
    }
    let now = unix_now();
    let records = store
        .providers(key, now, MAX_STORED_PROVIDERS)
        .await
        .map_err(|e| LookupError(e.to_string()))?;
    out.extend(
        records
            .into_iter()
            .filter(|r| r.provider != me.peer && r.addrs_live(now) && !r.addrs.is_empty())
            .map(|r| ProviderInfo {
                peer: r.provider,
                addrs: r.addrs,
            }),
    );
    Ok(out)
}

/// ADD_PROVIDER records into the bounded [`ProviderWriter`].
struct WriterSink(ProviderWriter);

impl ProviderSink for WriterSink {
    fn add(&self, key: Vec<u8>, provider: ProviderInfo) -> bool {
        match ProviderRecord::new(key, provider.peer, provider.addrs, unix_now()) {
            Ok(record) => self.0.try_add(record),
            Err(_) => false,
        }
    }
}

/// GET_VALUE / PUT_VALUE over the validated [`RecordStore`].
struct RecordValues(RecordStore);

impl ValueStore for RecordValues {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key, SystemTime::now())
    }

    fn put(&self, key: &[u8], value: Vec<u8>) -> Result<(), String> {
        self.0
            .put(key, &value, SystemTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_car_blocks_yields_every_section_of_the_stored_car() {
        let car = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fixtures/go-car/sample-v1.car"
        ))
        .unwrap();
        // The expected keys, from decoding the same bytes in memory.
        let mut decoder = hydrant_car::CarDecoder::new(hydrant_car::Limits::default());
        decoder.push(&car);
        let mut expected = Vec::new();
        while let Some(event) = decoder.next_event().unwrap() {
            if let hydrant_car::Event::Section(s) = event {
                expected.push(s.cid.hash().to_bytes());
            }
        }
        assert!(
            expected.len() > 100,
            "fixture has {} blocks",
            expected.len()
        );

        let objects = object_store::memory::InMemory::new();
        let key = "cars/x.car";
        objects
            .put(&object_store::path::Path::from(key), car.into())
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(expected.len() + 1);
        let n = queue_car_blocks(&objects, key, &tx).await.unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Some(k) = rx.recv().await {
            got.push(k);
        }
        assert_eq!(n as usize, expected.len());
        assert_eq!(got, expected);

        assert!(
            queue_car_blocks(&objects, "cars/missing.car", &mpsc::channel(1).0)
                .await
                .is_err()
        );
    }
}
