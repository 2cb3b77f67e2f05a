//! Keyspace and the routing table shared by all heads of a process
//! (../shared/specs/kad-dht.md, "Kademlia Keyspace" and "Routing Table").
//!
//! # Keys
//! A [`Key`] is the SHA2-256 digest of a peer ID's binary form (for peers) or of the raw key
//! bytes (for content: the multihash; for records: the record key). [`Distance`] is their XOR,
//! ordered as a 256-bit big-endian number.
//!
//! # One table for many heads
//! The table is one set of peers, shared by every head of the process, so any head answers
//! FIND_NODE for any key from what all heads learned. [`RoutingTable::closest`] scans every
//! peer: O(n log n) for n peers, exact for any key (a few thousand peers take well under a
//! millisecond); the table holds at most [`TableConfig::max_peers`].
//!
//! Buckets exist for the limits (k per bucket, IP diversity) and for refresh. Each peer
//! belongs to exactly one bucket, [`BucketId`] `{ head, cpl }`: `head` is the head whose key
//! is XOR-closest to the peer's key, `cpl` the length of their common prefix. With one head
//! these are exactly the Kademlia buckets of that head. With a fleet spread over the keyspace
//! (see [`crate::heads`]), each head owns the region of keys nearest to it and keeps classic
//! buckets within that region, so the union is a Kademlia table that is dense around every
//! head, not only around one reference key, and its size grows with the number of heads
//! (about heads × k × log2(network size / (heads × k)) peers).
//!
//! # Admission (the point of this module)
//! A peer enters the table only through [`RoutingTable::insert_verified`], which the network
//! layer calls only after the peer answered one of our requests within the timeout. Peers
//! that connected to us or were mentioned in a response go to a bounded candidate set
//! ([`RoutingTable::add_candidate`]) that the network layer drains
//! ([`RoutingTable::take_candidates`]) to probe them. This keeps out peers that accept
//! connections and then reset every stream (the 2023 incident,
//! ../shared/specs/kad-dht.md, "Verifying DHT Server").
//!
//! Failures: [`RoutingTable::record_failure`] counts consecutive failed requests and removes
//! a peer at [`TableConfig::max_failures`] (default 2: one stream reset under load does not
//! evict a good peer, two in a row do; any answer resets the count). A failed liveness probe
//! ([`RoutingTable::evict`]) removes the peer at once (spec, "Routing Table Refresh": "Any
//! peer that fails to respond MUST be removed"). The network layer also evicts at once a peer
//! whose lookup request timed out or whose stream failed on both tries (the doc of
//! [`Dht`](crate::Dht), "Admission"); `record_failure` is left for the other failures.
//!
//! Suspects: a peer whose request stalled (no answer within the lookup's stall timeout, see
//! [`crate::Lookup`]) or failed is marked with [`RoutingTable::mark_suspect`], whether it is
//! in the table or was only named by others. Lookups skip suspects
//! ([`RoutingTable::closest_for_lookup`], [`RoutingTable::is_suspect`]) until they answer a
//! request (any [`RoutingTable::insert_verified`] clears the mark) or
//! [`TableConfig::suspect_for`] passes. A suspect stays in the table (spec: peers "MUST NOT be
//! removed from the Routing Table as long as they remain online"): the request that stalled
//! is followed to its answer or timeout, and a timeout evicts it. So one silent peer costs
//! the node one stall timeout, not one per lookup, as go-libp2p's dial backoff makes a dead
//! peer fail fast for later queries.
//!
//! Full bucket ("Replacement Policy", seniority): a verified newcomer does not replace
//! anybody directly. [`InsertOutcome::ProbeOldest`] asks the network layer to probe the
//! least-recently-seen entry; the newcomer is kept as that entry's pending replacement and
//! takes its place only if the probe fails ([`RoutingTable::evict`]); if the probe succeeds
//! (`insert_verified` of the old peer) the newcomer is dropped.
//!
//! IP diversity ("IP Diversity Filter"): at most [`DiversityLimits::per_table`] (3) peers of
//! one IP group in the table and [`DiversityLimits::per_bucket`] (2) in one bucket; group =
//! /16 for IPv4 (the spec's /8 for legacy class A blocks is not done), /32 for IPv6 (the spec's
//! ASN grouping needs an ASN database). A peer is refused if any of its addresses' groups is
//! at a limit. Loopback and private addresses form groups like any other, so local tests
//! (all peers on 127.0.0.1) switch the filter off with `diversity: None`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use sha2::{Digest as _, Sha256};

use crate::protocol::MAX_ADDRS_PER_PEER;

/// The IPFS bucket size and replication factor (../shared/specs/kad-dht.md, "Bucket Size").
pub const K: usize = 20;

/// A point of the 256-bit Kademlia keyspace.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…")
    }
}

impl Key {
    /// The Kademlia identifier of a peer: SHA2-256 of its binary peer ID
    /// (../shared/specs/kad-dht.md, "Kademlia Keyspace").
    pub fn from_peer(peer: &PeerId) -> Key {
        Key::from_bytes(&peer.to_bytes())
    }

    /// The Kademlia identifier of raw key bytes: SHA2-256 of them (a CID's multihash,
    /// "Content Kademlia Identifier"; a record key, "Record Routing").
    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key(Sha256::digest(bytes).into())
    }

    /// A key from its 32 digest bytes.
    pub const fn from_digest(digest: [u8; 32]) -> Key {
        Key(digest)
    }

    /// The 32 bytes, big-endian.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// XOR distance to `other`.
    pub fn distance(&self, other: &Key) -> Distance {
        let mut d = [0u8; 32];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Number of leading bits shared with `other` (0..=256).
    pub fn common_prefix_len(&self, other: &Key) -> u32 {
        self.distance(other).leading_zeros()
    }

    /// The top 64 bits as a number.
    pub fn top_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

/// XOR distance between two keys; smaller is closer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Distance([u8; 32]);

impl Distance {
    /// Leading zero bits (256 for distance zero).
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in &self.0 {
            if *b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }
}

/// A bucket: the peers whose XOR-closest head is `head` and who share `cpl` leading bits with
/// it (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketId {
    /// Index of the head in the table's head list.
    pub head: usize,
    /// Common prefix length with the head's key (0..=255).
    pub cpl: u8,
}

/// IP diversity limits (../shared/specs/kad-dht.md, "IP Diversity Filter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiversityLimits {
    /// Most peers of one IP group in the table. Spec: 3.
    pub per_table: usize,
    /// Most peers of one IP group in one bucket. Spec: 2.
    pub per_bucket: usize,
}

impl Default for DiversityLimits {
    fn default() -> Self {
        DiversityLimits {
            per_table: 3,
            per_bucket: 2,
        }
    }
}

/// Settings of a [`RoutingTable`]. `TableConfig::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Peers per bucket. Default [`K`] (20).
    pub k: usize,
    /// Consecutive failed requests after which a peer is removed. Default 2 (see the module
    /// doc); 0 is read as 1.
    pub max_failures: u32,
    /// IP diversity limits; `None` switches the filter off (loopback tests). Default on, 3/2.
    pub diversity: Option<DiversityLimits>,
    /// A bucket not looked up for this long is stale. Default 10 min (spec, "Routing Table
    /// Refresh").
    pub refresh_interval: Duration,
    /// A peer not heard from for this long is due a liveness probe. Default 5 min (spec).
    pub liveness_interval: Duration,
    /// Most candidates waiting to be probed; further ones are dropped. Default 512.
    pub max_candidates: usize,
    /// A candidate whose probe failed is not taken again for this long. Default 10 min.
    pub candidate_retry_after: Duration,
    /// Most peers in the table; verified peers past it are refused. Default 20 000.
    pub max_peers: usize,
    /// A suspect (module doc, "Suspects") that does not answer is skipped by lookups for this
    /// long. Default 60 s: long enough that the lookups of the next minute do not stall on a
    /// dead peer again, short enough that a peer wrongly suspected under load (its answer
    /// later than the request timeout) is not left out for long. At most 4 ×
    /// `max_candidates` suspects are remembered (the oldest marks are forgotten first).
    pub suspect_for: Duration,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            k: K,
            max_failures: 2,
            diversity: Some(DiversityLimits::default()),
            refresh_interval: Duration::from_secs(600),
            liveness_interval: Duration::from_secs(300),
            max_candidates: 512,
            candidate_retry_after: Duration::from_secs(600),
            max_peers: 20_000,
            suspect_for: Duration::from_secs(60),
        }
    }
}

/// Result of [`RoutingTable::insert_verified`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The peer was added to `bucket`.
    Inserted {
        /// Its bucket.
        bucket: BucketId,
    },
    /// The peer was already there; its last-seen time (and addresses, if given) were updated.
    Updated,
    /// The bucket is full: probe `oldest` (least recently seen) and call
    /// [`RoutingTable::evict`] if it fails; the newcomer waits as its replacement.
    ProbeOldest {
        /// The entry to probe.
        oldest: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// The peer was not added.
    Rejected(RejectReason),
}

/// Why a verified peer was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// It is one of our heads.
    OwnHead,
    /// No addresses to give to others.
    NoAddresses,
    /// An IP group of its addresses is at a diversity limit.
    Diversity,
    /// Its bucket is full and a probe of the oldest entry is already pending.
    BucketFull,
    /// The table holds [`TableConfig::max_peers`].
    TableFull,
}

#[derive(Clone, Debug)]
struct Entry {
    addrs: Vec<Multiaddr>,
    bucket: BucketId,
    last_seen: Instant,
    failures: u32,
    groups: Vec<IpGroup>,
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    peers: Vec<PeerId>,
    last_refreshed: Option<Instant>,
    /// Newcomer waiting for the probe of `oldest`: (oldest, newcomer, newcomer addrs).
    pending: Option<(PeerId, PeerId, Vec<Multiaddr>)>,
}

/// An IP grouping key (/16 of IPv4, /32 of IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IpGroup {
    V4([u8; 2]),
    V6([u8; 4]),
}

fn ip_groups(addrs: &[Multiaddr]) -> Vec<IpGroup> {
    let mut groups = Vec::new();
    for addr in addrs {
        let ip = addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        });
        let group = match ip {
            Some(IpAddr::V4(ip)) => {
                let o = ip.octets();
                IpGroup::V4([o[0], o[1]])
            }
            Some(IpAddr::V6(ip)) => {
                let o = ip.octets();
                IpGroup::V6([o[0], o[1], o[2], o[3]])
            }
            None => continue,
        };
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// The routing table shared by all heads (see the module doc for the rules).
#[derive(Debug)]
pub struct RoutingTable {
    config: TableConfig,
    heads: Vec<PeerId>,
    head_keys: Vec<Key>,
    peers: HashMap<PeerId, Entry>,
    buckets: HashMap<BucketId, Bucket>,
    table_groups: HashMap<IpGroup, usize>,
    bucket_groups: HashMap<(BucketId, IpGroup), usize>,
    candidates: VecDeque<(PeerId, Vec<Multiaddr>)>,
    candidate_set: HashSet<PeerId>,
    failed_candidates: HashMap<PeerId, Instant>,
    suspects: HashMap<PeerId, Instant>,
}

impl RoutingTable {
    /// An empty table for the given heads (their peer IDs). With no heads, buckets are
    /// relative to the all-zero key (as `BucketId { head: 0, .. }`).
    pub fn new(heads: &[PeerId], config: TableConfig) -> RoutingTable {
        let mut head_keys: Vec<Key> = heads.iter().map(Key::from_peer).collect();
        if head_keys.is_empty() {
            head_keys.push(Key([0; 32]));
        }
        RoutingTable {
            config,
            heads: heads.to_vec(),
            head_keys,
            peers: HashMap::new(),
            buckets: HashMap::new(),
            table_groups: HashMap::new(),
            bucket_groups: HashMap::new(),
            candidates: VecDeque::new(),
            candidate_set: HashSet::new(),
            failed_candidates: HashMap::new(),
            suspects: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// The heads' peer IDs, in index order.
    pub fn heads(&self) -> impl Iterator<Item = &PeerId> {
        self.heads.iter()
    }

    /// Whether `peer` is one of our heads.
    pub fn is_head(&self, peer: &PeerId) -> bool {
        self.heads.contains(peer)
    }

    /// Index of the head XOR-closest to `key`.
    pub fn owner(&self, key: &Key) -> usize {
        let mut best = 0;
        let mut best_d = self.head_keys[0].distance(key);
        for (i, hk) in self.head_keys.iter().enumerate().skip(1) {
            let d = hk.distance(key);
            if d < best_d {
                best = i;
                best_d = d;
            }
        }
        best
    }

    /// The bucket a key belongs to.
    pub fn bucket_of(&self, key: &Key) -> BucketId {
        let head = self.owner(key);
        let cpl = self.head_keys[head].common_prefix_len(key).min(255) as u8;
        BucketId { head, cpl }
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether `peer` is in the table.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// The addresses of a peer in the table.
    pub fn addrs(&self, peer: &PeerId) -> Option<&[Multiaddr]> {
        self.peers.get(peer).map(|e| e.addrs.as_slice())
    }

    /// Every peer in the table (any order).
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Number of peers in a bucket.
    pub fn bucket_len(&self, bucket: BucketId) -> usize {
        self.buckets.get(&bucket).map_or(0, |b| b.peers.len())
    }

    /// Up to `n` peers closest to `key` by XOR distance, nearest first, with their addresses,
    /// skipping `exclude`. Exact scan of the table: O(p log p) for p peers.
    pub fn closest(
        &self,
        key: &Key,
        n: usize,
        exclude: Option<&PeerId>,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.closest_where(key, n, |p| Some(p) != exclude)
    }

    /// Up to `n` peers closest to `key` among those `keep` accepts, nearest first.
    fn closest_where(
        &self,
        key: &Key,
        n: usize,
        keep: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut all: Vec<(Distance, &PeerId, &Entry)> = self
            .peers
            .iter()
            .filter(|(p, _)| keep(p))
            .map(|(p, e)| (Key::from_peer(p).distance(key), p, e))
            .collect();
        if all.len() > n {
            all.select_nth_unstable_by(n, |a, b| a.0.cmp(&b.0));
            all.truncate(n);
        }
        all.sort_by_key(|a| a.0);
        all.into_iter()
            .map(|(_, p, e)| (*p, e.addrs.clone()))
            .collect()
    }

    /// The seeds of a lookup: up to `n` peers closest to `key` that are not suspects at `now`
    /// (module doc, "Suspects"), nearest first; when every peer is a suspect, the closest of
    /// them all (a lookup is better started from suspects than not at all).
    pub fn closest_for_lookup(
        &self,
        key: &Key,
        n: usize,
        now: Instant,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let seeds = self.closest_where(key, n, |p| !self.is_suspect(p, now));
        if seeds.is_empty() {
            self.closest(key, n, None)
        } else {
            seeds
        }
    }

    /// Marks `peer` suspect at `now`: its request stalled or failed (module doc, "Suspects").
    pub fn mark_suspect(&mut self, peer: PeerId, now: Instant) {
        if self.is_head(&peer) {
            return;
        }
        let cap = self.memory_cap();
        remember(&mut self.suspects, peer, now, cap, self.config.suspect_for);
    }

    /// Whether `peer` is a suspect at `now`: marked within [`TableConfig::suspect_for`] and
    /// not heard from since.
    pub fn is_suspect(&self, peer: &PeerId, now: Instant) -> bool {
        self.suspects
            .get(peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.config.suspect_for)
    }

    /// Number of suspect marks remembered (expired ones included until they are dropped).
    pub fn suspect_count(&self) -> usize {
        self.suspects.len()
    }

    /// Most entries of the failed-candidate and suspect memories.
    fn memory_cap(&self) -> usize {
        self.config.max_candidates.saturating_mul(4).max(1)
    }

    /// Adds `peer`, which has just answered one of our requests within the timeout, or marks
    /// it seen if present (resetting its failure count; non-empty `addrs` replace the known
    /// ones). The only way into the table. At most [`MAX_ADDRS_PER_PEER`] addresses are kept.
    pub fn insert_verified(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> InsertOutcome {
        if self.is_head(&peer) {
            return InsertOutcome::Rejected(RejectReason::OwnHead);
        }
        self.suspects.remove(&peer);
        let mut addrs = addrs;
        addrs.truncate(MAX_ADDRS_PER_PEER);
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.last_seen = now;
            entry.failures = 0;
            let bucket_id = entry.bucket;
            if !addrs.is_empty() && addrs != entry.addrs {
                let old = std::mem::replace(&mut entry.addrs, addrs);
                // Re-check diversity with the new addresses; keep the old ones if refused.
                let old_groups = entry.groups.clone();
                self.unaccount(bucket_id, &old_groups);
                let new_groups = ip_groups(&self.peers[&peer].addrs);
                if self.diversity_allows(bucket_id, &new_groups) {
                    self.account(bucket_id, &new_groups);
                    if let Some(e) = self.peers.get_mut(&peer) {
                        e.groups = new_groups;
                    }
                } else {
                    self.account(bucket_id, &old_groups);
                    if let Some(e) = self.peers.get_mut(&peer) {
                        e.addrs = old;
                    }
                }
            }
            // The oldest answered its probe: seniority wins, the newcomer is dropped (and not
            // probed again for a while, like any verified peer the table refused).
            if let Some(bucket) = self.buckets.get_mut(&bucket_id)
                && bucket
                    .pending
                    .as_ref()
                    .is_some_and(|(old, _, _)| *old == peer)
                && let Some((_, newcomer, _)) = bucket.pending.take()
            {
                self.candidate_failed(newcomer, now);
            }
            self.candidate_set.remove(&peer);
            return InsertOutcome::Updated;
        }
        if addrs.is_empty() {
            return InsertOutcome::Rejected(RejectReason::NoAddresses);
        }
        let key = Key::from_peer(&peer);
        let bucket_id = self.bucket_of(&key);
        let groups = ip_groups(&addrs);
        if !self.diversity_allows(bucket_id, &groups) {
            return self.refuse(peer, RejectReason::Diversity, now);
        }
        if self.peers.len() >= self.config.max_peers {
            return self.refuse(peer, RejectReason::TableFull, now);
        }
        let k = self.config.k.max(1);
        let bucket = self.buckets.entry(bucket_id).or_default();
        if bucket.peers.len() >= k {
            if bucket.pending.is_some() {
                return self.refuse(peer, RejectReason::BucketFull, now);
            }
            let peers = &self.peers;
            let oldest = bucket
                .peers
                .iter()
                .min_by_key(|p| peers.get(*p).map(|e| e.last_seen))
                .copied();
            let Some(oldest) = oldest else {
                return InsertOutcome::Rejected(RejectReason::BucketFull);
            };
            bucket.pending = Some((oldest, peer, addrs));
            let addrs = self
                .peers
                .get(&oldest)
                .map(|e| e.addrs.clone())
                .unwrap_or_default();
            return InsertOutcome::ProbeOldest { oldest, addrs };
        }
        bucket.peers.push(peer);
        self.account(bucket_id, &groups);
        self.peers.insert(
            peer,
            Entry {
                addrs,
                bucket: bucket_id,
                last_seen: now,
                failures: 0,
                groups,
            },
        );
        self.candidate_set.remove(&peer);
        InsertOutcome::Inserted { bucket: bucket_id }
    }

    /// Refuses a verified peer and remembers it like a failed candidate, so that the peers
    /// offering it again and again (every response names it) do not make us probe it again
    /// within [`TableConfig::candidate_retry_after`]: without this a full table re-probes the
    /// same responsive peers endlessly.
    fn refuse(&mut self, peer: PeerId, reason: RejectReason, now: Instant) -> InsertOutcome {
        self.candidate_set.remove(&peer);
        self.candidate_failed(peer, now);
        InsertOutcome::Rejected(reason)
    }

    fn diversity_allows(&self, bucket: BucketId, groups: &[IpGroup]) -> bool {
        let Some(limits) = self.config.diversity else {
            return true;
        };
        groups.iter().all(|g| {
            self.table_groups.get(g).copied().unwrap_or(0) < limits.per_table
                && self.bucket_groups.get(&(bucket, *g)).copied().unwrap_or(0) < limits.per_bucket
        })
    }

    fn account(&mut self, bucket: BucketId, groups: &[IpGroup]) {
        for g in groups {
            *self.table_groups.entry(*g).or_default() += 1;
            *self.bucket_groups.entry((bucket, *g)).or_default() += 1;
        }
    }

    fn unaccount(&mut self, bucket: BucketId, groups: &[IpGroup]) {
        for g in groups {
            if let Some(n) = self.table_groups.get_mut(g) {
                *n -= 1;
                if *n == 0 {
                    self.table_groups.remove(g);
                }
            }
            if let Some(n) = self.bucket_groups.get_mut(&(bucket, *g)) {
                *n -= 1;
                if *n == 0 {
                    self.bucket_groups.remove(&(bucket, *g));
                }
            }
        }
    }

    /// Counts a failed request to `peer`; removes it at [`TableConfig::max_failures`]
    /// consecutive failures. Returns what [`RoutingTable::evict`] returns when removed.
    pub fn record_failure(&mut self, peer: &PeerId, now: Instant) -> FailureOutcome {
        let max = self.config.max_failures.max(1);
        match self.peers.get_mut(peer) {
            None => FailureOutcome::NotPresent,
            Some(entry) => {
                entry.failures += 1;
                if entry.failures >= max {
                    self.evict(peer, now)
                } else {
                    FailureOutcome::Counted
                }
            }
        }
    }

    /// Removes `peer` (e.g. it failed a liveness probe). If it was the oldest of a full
    /// bucket with a pending newcomer, the newcomer is inserted in its place.
    pub fn evict(&mut self, peer: &PeerId, now: Instant) -> FailureOutcome {
        let Some(entry) = self.peers.remove(peer) else {
            return FailureOutcome::NotPresent;
        };
        self.unaccount(entry.bucket, &entry.groups);
        let mut replacement = None;
        if let Some(bucket) = self.buckets.get_mut(&entry.bucket) {
            bucket.peers.retain(|p| p != peer);
            if bucket
                .pending
                .as_ref()
                .is_some_and(|(old, _, _)| old == peer)
            {
                replacement = bucket.pending.take().map(|(_, new, addrs)| (new, addrs));
            }
        }
        let replaced_by = replacement.and_then(|(new, addrs)| {
            matches!(
                self.insert_verified(new, addrs, now),
                InsertOutcome::Inserted { .. }
            )
            .then_some(new)
        });
        FailureOutcome::Removed { replaced_by }
    }

    /// Offers a peer we heard of (it connected to us or a response named it) for probing.
    /// Returns `false` when it is ignored: already in the table, a head, already a candidate,
    /// failed a probe within [`TableConfig::candidate_retry_after`], or the set is full.
    pub fn add_candidate(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) -> bool {
        if self.peers.contains_key(&peer)
            || self.is_head(&peer)
            || self.candidate_set.contains(&peer)
        {
            return false;
        }
        if let Some(t) = self.failed_candidates.get(&peer) {
            if now.saturating_duration_since(*t) < self.config.candidate_retry_after {
                return false;
            }
            self.failed_candidates.remove(&peer);
        }
        if self.candidates.len() >= self.config.max_candidates {
            return false;
        }
        let mut addrs = addrs;
        addrs.truncate(MAX_ADDRS_PER_PEER);
        self.candidate_set.insert(peer);
        self.candidates.push_back((peer, addrs));
        true
    }

    /// Takes up to `n` candidates to probe, oldest first.
    pub fn take_candidates(&mut self, n: usize) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let n = n.min(self.candidates.len());
        let taken: Vec<_> = self.candidates.drain(..n).collect();
        for (p, _) in &taken {
            self.candidate_set.remove(p);
        }
        taken
    }

    /// Number of candidates waiting.
    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }

    /// Notes that the probe of a candidate failed: it is not taken again for
    /// [`TableConfig::candidate_retry_after`]. The memory of failures is bounded by
    /// 4 × [`TableConfig::max_candidates`] (the oldest are forgotten first).
    pub fn candidate_failed(&mut self, peer: PeerId, now: Instant) {
        let cap = self.memory_cap();
        let retry = self.config.candidate_retry_after;
        remember(&mut self.failed_candidates, peer, now, cap, retry);
    }

    /// Peers not heard from within [`TableConfig::liveness_interval`], with their addresses
    /// (to probe; spec, "Routing Table Refresh").
    pub fn due_for_liveness(&self, now: Instant) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.peers
            .iter()
            .filter(|(_, e)| {
                now.saturating_duration_since(e.last_seen) >= self.config.liveness_interval
            })
            .map(|(p, e)| (*p, e.addrs.clone()))
            .collect()
    }

    /// Marks the bucket of `key` as refreshed (a lookup for `key` was made).
    pub fn mark_refreshed(&mut self, key: &Key, now: Instant) {
        let bucket = self.bucket_of(key);
        self.buckets.entry(bucket).or_default().last_refreshed = Some(now);
    }

    /// Buckets due a refresh lookup: for each head, every bucket from its lowest to its highest
    /// non-empty `cpl` ("up to the last non-empty bucket") not refreshed within
    /// [`TableConfig::refresh_interval`]. Heads with no peers yet have none (their self-lookup
    /// fills them).
    pub fn stale_buckets(&self, now: Instant) -> Vec<BucketId> {
        let mut ranges: HashMap<usize, (u8, u8)> = HashMap::new();
        for (id, b) in &self.buckets {
            if b.peers.is_empty() {
                continue;
            }
            let r = ranges.entry(id.head).or_insert((id.cpl, id.cpl));
            r.0 = r.0.min(id.cpl);
            r.1 = r.1.max(id.cpl);
        }
        let mut out = Vec::new();
        for (head, (lo, hi)) in ranges {
            for cpl in lo..=hi {
                let id = BucketId { head, cpl };
                if !self.reachable(id) {
                    continue;
                }
                let fresh = self
                    .buckets
                    .get(&id)
                    .and_then(|b| b.last_refreshed)
                    .is_some_and(|t| {
                        now.saturating_duration_since(t) < self.config.refresh_interval
                    });
                if !fresh {
                    out.push(id);
                }
            }
        }
        out.sort();
        out
    }

    /// Whether some key falls in `bucket`: no other head shares exactly `cpl` bits with the
    /// bucket's head (such a head is closer to every key of that bucket).
    fn reachable(&self, bucket: BucketId) -> bool {
        let Some(hk) = self.head_keys.get(bucket.head) else {
            return false;
        };
        !self.head_keys.iter().enumerate().any(|(i, other)| {
            i != bucket.head && hk.common_prefix_len(other) == u32::from(bucket.cpl)
        })
    }

    /// A lookup key (a binary peer ID: an SHA2-256 multihash of `entropy`-derived bytes)
    /// whose [`Key`] falls in `bucket`, or `None` after `max_tries` attempts (about
    /// 2^(cpl+1) are needed). `entropy` gives fresh random numbers.
    pub fn random_key_in_bucket(
        &self,
        bucket: BucketId,
        max_tries: u64,
        entropy: &mut dyn FnMut() -> u64,
    ) -> Option<Vec<u8>> {
        let head_key = *self.head_keys.get(bucket.head)?;
        let seed = entropy();
        for i in 0..max_tries {
            let mut input = [0u8; 16];
            input[..8].copy_from_slice(&seed.to_be_bytes());
            input[8..].copy_from_slice(&i.to_be_bytes());
            let digest: [u8; 32] = Sha256::digest(input).into();
            let mut peer_bytes = Vec::with_capacity(34);
            peer_bytes.extend_from_slice(&[0x12, 0x20]);
            peer_bytes.extend_from_slice(&digest);
            let key = Key::from_bytes(&peer_bytes);
            if head_key.common_prefix_len(&key) == u32::from(bucket.cpl)
                && self.owner(&key) == bucket.head
            {
                return Some(peer_bytes);
            }
        }
        None
    }
}

/// Result of [`RoutingTable::record_failure`] and [`RoutingTable::evict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The peer was not in the table.
    NotPresent,
    /// The failure was counted; the peer stays.
    Counted,
    /// The peer was removed; a pending newcomer may have taken its place.
    Removed {
        /// The newcomer inserted in its place, if any.
        replaced_by: Option<PeerId>,
    },
}

/// Records `peer` at `now` in a memory of marks that expire after `expiry`, holding at most
/// `cap` of them: when full, the expired marks are dropped, then the oldest one.
fn remember(
    marks: &mut HashMap<PeerId, Instant>,
    peer: PeerId,
    now: Instant,
    cap: usize,
    expiry: Duration,
) {
    if marks.len() >= cap && !marks.contains_key(&peer) {
        marks.retain(|_, t| now.saturating_duration_since(*t) < expiry);
        if marks.len() >= cap
            && let Some(oldest) = marks.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
        {
            marks.remove(&oldest);
        }
    }
    marks.insert(peer, now);
}

/// A source of non-cryptographic random `u64`s from the standard library's per-process
/// random hasher keys (no extra dependency). Good for refresh targets, which need not be
/// unpredictable.
pub fn entropy() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests;
