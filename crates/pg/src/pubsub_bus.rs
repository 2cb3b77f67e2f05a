//! [`PubSubBus`]: pub/sub messages fanned out between replicas through PostgreSQL
//! `LISTEN`/`NOTIFY` (issue 19, "Replicas"; DESIGN.md says why).
//!
//! Every replica forwards the messages it published or received from GossipSub
//! ([`PubSubBus::forward`]) and hands what the other replicas forwarded to its local
//! subscribers (the `deliver` callback of [`PubSubBus::start`]). One channel per schema
//! (`hydrant_pubsub_<hash of the schema>`); each payload names its sender's random replica ID,
//! and a replica skips its own. A message whose frame does not fit a payload (8,000 bytes) is
//! stored in `pubsub_messages` (migration 9) and its row id notified; rows older than
//! [`BusConfig::retention`] are deleted by the senders.
//!
//! Two connections of their own, outside the pool:
//! - the **sender** task takes messages from a queue bounded in messages and bytes (a full
//!   queue drops the message: [`BusDrop::QueueFull`]); each `NOTIFY` has
//!   [`BusConfig::send_timeout`]; while PostgreSQL is unreachable messages are dropped
//!   ([`BusDrop::Unavailable`]) and the connection is retried with back-off. It never blocks
//!   the caller.
//! - the **listener** task `LISTEN`s and delivers; when its connection is lost (or a health
//!   check every [`BusConfig::health_interval`] fails) it reconnects with back-off. What was
//!   notified meanwhile is lost: `NOTIFY` is not durable, and pub/sub is best effort.
//!
//! Each outage is logged once (warn) and its end once (info, with its length).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};

use crate::pubsub_wire::{self, BusMessage, Payload};
use crate::{PgPool, describe};

/// Settings of a [`PubSubBus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Most messages waiting to be sent (at least 1).
    pub queue_messages: usize,
    /// Most frame bytes waiting to be sent; a message that would pass it is dropped.
    pub queue_bytes: usize,
    /// Largest frame (topic, IDs and data) forwarded, in bytes; larger ones are dropped
    /// ([`BusDrop::TooLarge`]) and refused when received.
    pub max_frame_bytes: usize,
    /// How long one `NOTIFY` (or row insert) may take before the message is dropped.
    pub send_timeout: Duration,
    /// How long a large message's row is kept (receivers read it within milliseconds).
    pub retention: Duration,
    /// First wait before reconnecting; doubled after each failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// How often the listener checks its connection with `SELECT 1` (a dead TCP peer is
    /// otherwise only noticed by keep-alives).
    pub health_interval: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            queue_messages: 1024,
            queue_bytes: 16 << 20,
            max_frame_bytes: (1 << 20) + 4096,
            send_timeout: Duration::from_secs(5),
            retention: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            health_interval: Duration::from_secs(30),
        }
    }
}

/// Why a message was not passed on (the `reason` label of the drop metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusDrop {
    /// The send queue was full (messages or bytes): PostgreSQL is slower than the publishers.
    QueueFull,
    /// Its frame is larger than [`BusConfig::max_frame_bytes`] (sent or received).
    TooLarge,
    /// No connection to PostgreSQL when it was its turn.
    Unavailable,
    /// `NOTIFY` failed or took longer than [`BusConfig::send_timeout`].
    SendFailed,
    /// A received notification or frame did not parse.
    Malformed,
    /// A received row id named no row (deleted after [`BusConfig::retention`]) or could not
    /// be read.
    RowMissing,
    /// The listener's notification queue was full.
    ListenerBehind,
}

impl BusDrop {
    /// Every reason, in the order of [`BusSnapshot::dropped`].
    pub const ALL: [Self; 7] = [
        Self::QueueFull,
        Self::TooLarge,
        Self::Unavailable,
        Self::SendFailed,
        Self::Malformed,
        Self::RowMissing,
        Self::ListenerBehind,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
            Self::SendFailed => "send_failed",
            Self::Malformed => "malformed",
            Self::RowMissing => "row_missing",
            Self::ListenerBehind => "listener_behind",
        }
    }
}

/// Counters of a bus since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusSnapshot {
    /// Messages sent to the other replicas.
    pub forwarded: u64,
    /// Of those, sent through the `pubsub_messages` table.
    pub forwarded_large: u64,
    /// Messages from other replicas handed to `deliver`.
    pub received: u64,
    /// Messages dropped, per [`BusDrop::ALL`] reason.
    pub dropped: [(&'static str, u64); 7],
    /// Connections re-established after being lost (listener and sender).
    pub reconnects: u64,
    /// Whether the listener is connected and listening now.
    pub listening: bool,
    /// Frame bytes waiting to be sent now.
    pub queued_bytes: u64,
}

#[derive(Debug, Default)]
struct Stats {
    forwarded: AtomicU64,
    forwarded_large: AtomicU64,
    received: AtomicU64,
    dropped: [AtomicU64; 7],
    reconnects: AtomicU64,
    listening: AtomicBool,
    queued_bytes: AtomicUsize,
    /// Notifications the connection task could not queue (shared with it).
    behind: Arc<AtomicU64>,
}

impl Stats {
    fn dropped(&self, reason: BusDrop) {
        let i = BusDrop::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.dropped[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// A frame waiting to be sent.
struct Queued {
    frame: Bytes,
}

/// The fan-out between replicas (module docs). Dropping it stops both tasks.
#[derive(Debug)]
pub struct PubSubBus {
    queue: mpsc::Sender<Queued>,
    stats: Arc<Stats>,
    config: BusConfig,
    replica: u64,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for PubSubBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PubSubBus {
    /// Starts the sender and the listener on `pool`'s database and schema, each on a
    /// connection of its own. `deliver` is called (on the listener task; it must not block)
    /// with every message another replica forwarded. Waits for the first `LISTEN` (or its
    /// failure, after which the listener keeps retrying), so that a message forwarded by
    /// another replica once this returns `Ok` is received.
    pub async fn start<F>(pool: &PgPool, config: BusConfig, deliver: F) -> Self
    where
        F: Fn(BusMessage) + Send + Sync + 'static,
    {
        let stats = Arc::new(Stats::default());
        let replica = random_replica_id();
        let channel = channel_name(pool.schema());
        let (queue, rx) = mpsc::channel(config.queue_messages.max(1));
        let mut listener = Listener {
            pool: pool.clone(),
            channel: channel.clone(),
            replica,
            stats: stats.clone(),
            config: config.clone(),
            deliver: Box::new(deliver),
            outage: Outage::new("pub/sub bus listener"),
        };
        let first = listener.connect().await;
        let sender = Sender {
            pool: pool.clone(),
            channel,
            replica,
            stats: stats.clone(),
            config: config.clone(),
            conn: None,
            next_attempt: Instant::now(),
            backoff: config.reconnect_min,
            outage: Outage::new("pub/sub bus sender"),
        };
        Self {
            queue,
            stats,
            config,
            replica,
            tasks: [
                tokio::spawn(sender.run(rx)),
                tokio::spawn(listener.run(first)),
            ],
        }
    }

    /// Queues `msg` for the other replicas; never waits. A message too large, or one that
    /// finds the queue full (in messages or bytes), is dropped and counted.
    pub fn forward(&self, msg: &BusMessage) {
        let frame = match msg.encode_frame() {
            Some(frame) if frame.len() <= self.config.max_frame_bytes => frame,
            _ => return self.stats.dropped(BusDrop::TooLarge),
        };
        let len = frame.len();
        let queued = self.stats.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if queued + len > self.config.queue_bytes || self.queue.try_send(Queued { frame }).is_err()
        {
            self.stats.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.stats.dropped(BusDrop::QueueFull);
        }
    }

    /// This replica's random ID (in every payload it sends).
    pub fn replica_id(&self) -> u64 {
        self.replica
    }

    /// The counters now.
    pub fn snapshot(&self) -> BusSnapshot {
        let s = &self.stats;
        // The connection task counts what it could not queue on its own counter.
        let behind = s.behind.load(Ordering::Relaxed);
        BusSnapshot {
            forwarded: s.forwarded.load(Ordering::Relaxed),
            forwarded_large: s.forwarded_large.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            dropped: std::array::from_fn(|i| {
                let reason = BusDrop::ALL[i];
                let extra = if reason == BusDrop::ListenerBehind {
                    behind
                } else {
                    0
                };
                (
                    reason.as_str(),
                    s.dropped[i].load(Ordering::Relaxed) + extra,
                )
            }),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            listening: s.listening.load(Ordering::Relaxed),
            queued_bytes: s.queued_bytes.load(Ordering::Relaxed) as u64,
        }
    }
}

/// The `NOTIFY` channel of a schema: `hydrant_pubsub_` + 16 hex digits of FNV-1a of the
/// schema (channel names are limited to 63 bytes; schemas may have 63).
fn channel_name(schema: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("hydrant_pubsub_{hash:016x}")
}

/// A random 64-bit ID from the standard library's randomly keyed hasher (seeded by the OS).
fn random_replica_id() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// One outage of a connection, logged once when it starts and once when it ends.
struct Outage {
    what: &'static str,
    since: Option<Instant>,
}

impl Outage {
    fn new(what: &'static str) -> Self {
        Self { what, since: None }
    }

    fn failed(&mut self, error: &str) {
        if self.since.is_none() {
            tracing::warn!(error, "{}: PostgreSQL connection lost; retrying", self.what);
            self.since = Some(Instant::now());
        } else {
            tracing::debug!(error, "{}: reconnection failed", self.what);
        }
    }

    /// Ends the outage, if any; true when there was one.
    fn recovered(&mut self) -> bool {
        let Some(since) = self.since.take() else {
            return false;
        };
        tracing::info!(
            after_ms = since.elapsed().as_millis() as u64,
            "{}: PostgreSQL connection back",
            self.what
        );
        true
    }
}

/// The sender's connection and its prepared statements.
struct SendConn {
    client: Client,
    inline: Statement,
    large: Statement,
    cleanup: Statement,
}

struct Sender {
    pool: PgPool,
    channel: String,
    replica: u64,
    stats: Arc<Stats>,
    config: BusConfig,
    conn: Option<SendConn>,
    next_attempt: Instant,
    backoff: Duration,
    outage: Outage,
}

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let mut cleanup = tokio::time::interval(self.config.retention.max(Duration::from_secs(1)));
        cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                queued = rx.recv() => {
                    let Some(Queued { frame }) = queued else { return };
                    self.stats.queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
                    self.send(frame).await;
                }
                _ = cleanup.tick() => self.cleanup().await,
            }
        }
    }

    async fn send(&mut self, frame: Bytes) {
        if !self.connect().await {
            return self.stats.dropped(BusDrop::Unavailable);
        }
        let Some(conn) = &self.conn else { return };
        let large = frame.len() > pubsub_wire::MAX_INLINE_FRAME_BYTES;
        let sent = tokio::time::timeout(self.config.send_timeout, async {
            if large {
                let prefix = pubsub_wire::row_payload_prefix(self.replica);
                conn.client
                    .execute(&conn.large, &[&&frame[..], &self.channel, &prefix])
                    .await
            } else {
                let payload = pubsub_wire::inline_payload(self.replica, &frame);
                conn.client
                    .execute(&conn.inline, &[&self.channel, &payload])
                    .await
            }
        })
        .await;
        let (error, reopen) = match sent {
            Ok(Ok(_)) => {
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                if large {
                    self.stats.forwarded_large.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Ok(Err(e)) => (describe(&e), conn.client.is_closed()),
            // The statement may still hold the connection: open another.
            Err(_) => ("NOTIFY timed out".to_owned(), true),
        };
        self.stats.dropped(BusDrop::SendFailed);
        tracing::debug!(error, "pub/sub bus: NOTIFY failed");
        if reopen {
            self.lost(&error);
        }
    }

    /// Deletes the large messages' rows older than the retention.
    async fn cleanup(&mut self) {
        if !self.connect().await {
            return;
        }
        let Some(conn) = &self.conn else { return };
        let secs = self.config.retention.as_secs_f64();
        let deleted = tokio::time::timeout(
            self.config.send_timeout,
            conn.client.execute(&conn.cleanup, &[&secs]),
        )
        .await;
        if !matches!(deleted, Ok(Ok(_))) {
            tracing::debug!("pub/sub bus: deleting old rows failed");
        }
    }

    fn lost(&mut self, error: &str) {
        self.conn = None;
        self.outage.failed(error);
        self.next_attempt = Instant::now();
    }

    /// Whether there is a connection, opened now if it was lost and the back-off allows it.
    async fn connect(&mut self) -> bool {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.lost("connection closed");
        }
        if self.conn.is_none() {
            if Instant::now() < self.next_attempt {
                return false;
            }
            match self.open().await {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.backoff = self.config.reconnect_min;
                    if self.outage.recovered() {
                        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    self.outage.failed(&e);
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(self.config.reconnect_max);
                    return false;
                }
            }
        }
        true
    }

    async fn open(&self) -> Result<SendConn, String> {
        let connect = async {
            let client = self.pool.dedicated(None).await?;
            let inline = client.prepare("SELECT pg_notify($1, $2)").await?;
            let large = client
                .prepare(
                    "WITH m AS (INSERT INTO pubsub_messages (body) VALUES ($1) RETURNING id) \
                     SELECT pg_notify($2, $3 || m.id::text) FROM m",
                )
                .await?;
            let cleanup = client
                .prepare(
                    "DELETE FROM pubsub_messages \
                     WHERE created_at < now() - make_interval(secs => $1)",
                )
                .await?;
            Ok::<_, tokio_postgres::Error>(SendConn {
                client,
                inline,
                large,
                cleanup,
            })
        };
        match tokio::time::timeout(self.config.send_timeout, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err("connecting timed out".to_owned()),
        }
    }
}

/// The listener's connection: the client and the notifications its task receives.
struct ListenConn {
    client: Client,
    notes: mpsc::Receiver<tokio_postgres::Notification>,
    fetch: Statement,
}

/// Notifications waiting for the listener (each at most 8,000 bytes).
const LISTEN_QUEUE: usize = 1024;

struct Listener {
    pool: PgPool,
    channel: String,
    replica: u64,
    stats: Arc<Stats>,
    config: BusConfig,
    deliver: Box<dyn Fn(BusMessage) + Send + Sync>,
    outage: Outage,
}

impl Listener {
    async fn run(mut self, mut conn: Option<ListenConn>) {
        let mut backoff = self.config.reconnect_min;
        loop {
            if let Some(c) = conn.take() {
                backoff = self.config.reconnect_min;
                let error = self.listen(c).await;
                self.stats.listening.store(false, Ordering::Relaxed);
                self.outage.failed(&error);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.reconnect_max);
            conn = self.connect().await;
        }
    }

    /// Opens a connection and `LISTEN`s; `None` (logged) when it fails.
    async fn connect(&mut self) -> Option<ListenConn> {
        let open = async {
            let (tx, notes) = mpsc::channel(LISTEN_QUEUE);
            let client = self
                .pool
                .dedicated(Some((tx, self.stats.behind.clone())))
                .await?;
            client
                .batch_execute(&format!("LISTEN \"{}\"", self.channel))
                .await?;
            let fetch = client
                .prepare("SELECT body FROM pubsub_messages WHERE id = $1")
                .await?;
            Ok::<_, tokio_postgres::Error>(ListenConn {
                client,
                notes,
                fetch,
            })
        };
        match tokio::time::timeout(self.config.send_timeout, open).await {
            Ok(Ok(conn)) => {
                self.stats.listening.store(true, Ordering::Relaxed);
                if self.outage.recovered() {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                Some(conn)
            }
            Ok(Err(e)) => {
                self.outage.failed(&describe(&e));
                None
            }
            Err(_) => {
                self.outage.failed("connecting timed out");
                None
            }
        }
    }

    /// Delivers notifications until the connection is lost; returns why.
    async fn listen(&self, mut conn: ListenConn) -> String {
        let mut health = tokio::time::interval(self.config.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                note = conn.notes.recv() => match note {
                    Some(note) => self.handle(&conn, note.payload()).await,
                    None => return "connection closed".to_owned(),
                },
                _ = health.tick() => {
                    let check = tokio::time::timeout(
                        self.config.send_timeout,
                        conn.client.simple_query("SELECT 1"),
                    );
                    match check.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return describe(&e),
                        Err(_) => return "health check timed out".to_owned(),
                    }
                }
            }
        }
    }

    async fn handle(&self, conn: &ListenConn, payload: &str) {
        let (replica, carried) = match pubsub_wire::parse_payload(payload) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::debug!(error = %e, "pub/sub bus: notification refused");
                return self.stats.dropped(BusDrop::Malformed);
            }
        };
        if replica == self.replica {
            return;
        }
        let frame = match carried {
            Payload::Inline(frame) => frame,
            Payload::Row(id) => {
                let row = tokio::time::timeout(
                    self.config.send_timeout,
                    conn.client.query_opt(&conn.fetch, &[&id]),
                )
                .await;
                match row {
                    Ok(Ok(Some(row))) => Bytes::from(row.get::<_, Vec<u8>>(0)),
                    _ => return self.stats.dropped(BusDrop::RowMissing),
                }
            }
        };
        if frame.len() > self.config.max_frame_bytes {
            return self.stats.dropped(BusDrop::TooLarge);
        }
        match BusMessage::decode_frame(&frame) {
            Ok(msg) => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                (self.deliver)(msg);
            }
            Err(_) => self.stats.dropped(BusDrop::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_fit_and_differ() {
        let long = channel_name(&"s".repeat(63));
        assert!(long.len() < 64);
        assert_ne!(channel_name("a"), channel_name("b"));
        assert_ne!(random_replica_id(), random_replica_id());
    }
}
