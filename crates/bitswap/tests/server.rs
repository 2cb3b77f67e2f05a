//! The Bitswap server between two real libp2p swarms on loopback TCP (noise + yamux +
//! libp2p-stream): a tiny client written here sends wantlists on a stream it opens and reads
//! the answers on the streams the server opens back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use hydrant_bitswap::{
    Bitswap, BitswapConfig, BitswapHandle, BitswapStats, CidPrefix, MAX_MESSAGE_SIZE, Message,
    PresenceType, ProtocolVersion, WANT_ENTRY_BYTES, WantType, WantlistEntry, cid_from_prefix,
    decode_message, read_frame, write_frame,
};
use hydrant_blocks::{Blockstore, BlockstoreError};
use hydrant_budget::{Holder, MemoryBudget};
use libp2p::{Multiaddr, PeerId, Swarm, multiaddr::Protocol, swarm::SwarmEvent};
use multihash_codetable::{Code, MultihashDigest as _};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(15);

/// An in-memory block store; CIDs in `failing` return a storage error; `get_many` waits until
/// `gate` is open. While `slow` is not empty, `get_each` answers the other CIDs at once and
/// those in `slow` once `gate` is open (a batch whose reads end at different times).
struct MemStore {
    blocks: HashMap<Cid, Bytes>,
    failing: HashSet<Cid>,
    gate: watch::Receiver<bool>,
    slow: Arc<std::sync::Mutex<HashSet<Cid>>>,
}

impl MemStore {
    fn failure(&self, cid: &Cid) -> Option<BlockstoreError> {
        self.failing
            .contains(cid)
            .then(|| BlockstoreError::Storage {
                key: "memory".into(),
                start: 0,
                end: 0,
                detail: "injected failure".into(),
            })
    }
}

#[async_trait]
impl Blockstore for MemStore {
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        if let Some(error) = self.failure(cid) {
            return Err(error);
        }
        Ok(self.blocks.contains_key(cid))
    }

    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError> {
        if let Some(error) = self.failure(cid) {
            return Err(error);
        }
        Ok(self.blocks.get(cid).map(|b| b.len() as u32))
    }

    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(error) = self.failure(cid) {
            return Err(error);
        }
        Ok(self.blocks.get(cid).cloned())
    }

    async fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let _ = self.gate.clone().wait_for(|open| *open).await;
        let mut out = Vec::new();
        for cid in cids {
            out.push(self.get(cid).await);
        }
        out
    }

    async fn get_each(
        &self,
        cids: &[Cid],
        each: &mut (dyn FnMut(usize, Result<Option<Bytes>, BlockstoreError>) + Send),
    ) {
        let slow = self.slow.lock().unwrap().clone();
        if slow.is_empty() {
            for (i, got) in self.get_many(cids).await.into_iter().enumerate() {
                each(i, got);
            }
            return;
        }
        for (i, cid) in cids.iter().enumerate() {
            if !slow.contains(cid) {
                each(i, self.get(cid).await);
            }
        }
        let _ = self.gate.clone().wait_for(|open| *open).await;
        for (i, cid) in cids.iter().enumerate() {
            if slow.contains(cid) {
                each(i, self.get(cid).await);
            }
        }
    }
}

fn v0(data: &[u8]) -> Cid {
    Cid::new_v0(Code::Sha2_256.digest(data)).unwrap()
}

fn v1_blake2b(data: &[u8]) -> Cid {
    Cid::new_v1(0x55, Code::Blake2b256.digest(data))
}

fn v1_sha256(data: &[u8]) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(data))
}

fn want(cid: Cid, want_type: WantType, send_dont_have: bool) -> WantlistEntry {
    WantlistEntry {
        cid,
        priority: 1,
        cancel: false,
        want_type,
        send_dont_have,
    }
}

fn wantlist(entries: Vec<WantlistEntry>) -> Message {
    Message {
        wantlist: entries,
        ..Default::default()
    }
}

fn swarm() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A message the client received, with the protocol and number of the stream it came on and
/// its frame length (prefix included).
#[derive(Debug)]
struct Received {
    version: ProtocolVersion,
    stream: usize,
    frame_len: usize,
    message: Message,
}

struct Setup {
    server: PeerId,
    client_peer: PeerId,
    client: libp2p_stream::Control,
    received: mpsc::Receiver<Received>,
    handle: BitswapHandle,
    gate: watch::Sender<bool>,
    slow: Arc<std::sync::Mutex<HashSet<Cid>>>,
}

/// Starts a server swarm with Bitswap over `blocks` and a connected client swarm that accepts
/// the server's streams on `client_accepts`.
async fn setup(
    blocks: &[Bytes],
    cids: impl Fn(&[u8]) -> Vec<Cid>,
    failing: &[Cid],
    config: BitswapConfig,
    client_accepts: &[ProtocolVersion],
) -> Setup {
    let mut store_blocks = HashMap::new();
    for block in blocks {
        for cid in cids(block) {
            store_blocks.insert(cid, block.clone());
        }
    }
    let (gate, gate_rx) = watch::channel(true);
    let slow = Arc::default();
    let store = Arc::new(MemStore {
        blocks: store_blocks,
        failing: failing.iter().copied().collect(),
        gate: gate_rx,
        slow: Arc::clone(&slow),
    });

    let mut server = swarm();
    let mut client = swarm();
    let server_peer = *server.local_peer_id();
    let client_peer = *client.local_peer_id();
    let handle = Bitswap::spawn(server.behaviour().new_control(), store, config).unwrap();

    server
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    tokio::spawn(async move {
        loop {
            server.select_next_some().await;
        }
    });

    let mut control = client.behaviour().new_control();
    let mut incoming = Vec::new();
    for version in client_accepts {
        let version = *version;
        incoming.push(
            control
                .accept(version.protocol())
                .unwrap()
                .map(move |(peer, stream)| (peer, version, stream)),
        );
    }
    let mut incoming = futures::stream::select_all(incoming);
    let (tx, received) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut count = 0;
        while let Some((peer, version, mut stream)) = incoming.next().await {
            assert_eq!(peer, server_peer);
            count += 1;
            let tx = tx.clone();
            let number = count;
            tokio::spawn(async move {
                while let Ok(Some(body)) = read_frame(&mut stream, MAX_MESSAGE_SIZE).await {
                    let frame_len = body.len()
                        + unsigned_varint::encode::usize(
                            body.len(),
                            &mut unsigned_varint::encode::usize_buffer(),
                        )
                        .len();
                    let message = decode_message(&body).expect("server sends valid messages");
                    let received = Received {
                        version,
                        stream: number,
                        frame_len,
                        message,
                    };
                    if tx.send(received).await.is_err() {
                        return;
                    }
                }
            });
        }
    });

    client.dial(addr.with(Protocol::P2p(server_peer))).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { .. } = client.select_next_some().await {
            break;
        }
    }
    tokio::spawn(async move {
        loop {
            client.select_next_some().await;
        }
    });

    Setup {
        server: server_peer,
        client_peer,
        client: control,
        received,
        handle,
        gate,
        slow,
    }
}

impl Setup {
    /// Opens a stream with `version` and writes `message` on it; returns the stream.
    async fn send(&mut self, version: ProtocolVersion, message: &Message) -> libp2p::Stream {
        let mut stream = self
            .client
            .open_stream(self.server, version.protocol())
            .await
            .unwrap();
        write_frame(&mut stream, &message.encode_frame())
            .await
            .unwrap();
        stream
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.received.recv())
            .await
            .expect("an answer in time")
            .expect("client still running")
    }

    /// Asserts nothing more arrives for a while.
    async fn nothing_more(&mut self) {
        if let Ok(Some(extra)) =
            tokio::time::timeout(Duration::from_millis(500), self.received.recv()).await
        {
            panic!("unexpected message: {extra:?}");
        }
    }

    /// Waits until the server's counters satisfy `done`.
    async fn stats_until(&self, done: impl Fn(&BitswapStats) -> bool) -> BitswapStats {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.handle.stats();
            if done(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stats never reached the expected state: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Everything answered so far, by kind.
#[derive(Default, Debug)]
struct Answers {
    blocks: HashMap<Cid, Bytes>,
    prefixes: HashMap<Cid, Vec<u8>>,
    haves: HashSet<Cid>,
    dont_haves: HashSet<Cid>,
}

impl Answers {
    fn add(&mut self, message: &Message) {
        for block in &message.payload {
            let prefix = block.prefix.to_bytes();
            let cid = cid_from_prefix(&prefix, &block.data).unwrap();
            self.prefixes.insert(cid, prefix);
            assert!(self.blocks.insert(cid, block.data.clone()).is_none());
        }
        for data in &message.blocks {
            assert!(self.blocks.insert(v0(data), data.clone()).is_none());
        }
        for presence in &message.block_presences {
            let set = match presence.presence {
                PresenceType::Have => &mut self.haves,
                PresenceType::DontHave => &mut self.dont_haves,
            };
            assert!(set.insert(presence.cid), "one answer per want");
        }
    }

    fn count(&self) -> usize {
        self.blocks.len() + self.haves.len() + self.dont_haves.len()
    }
}

fn all_cids(data: &[u8]) -> Vec<Cid> {
    vec![v0(data), v1_blake2b(data), v1_sha256(data)]
}

#[tokio::test]
async fn bitswap_1_2_0_haves_dont_haves_and_blocks() {
    let big = Bytes::from(vec![7u8; 5000]);
    let other = Bytes::from(vec![8u8; 3000]);
    let tiny = Bytes::from_static(b"tiny block");
    let broken = Bytes::from_static(b"store fails on this one");
    let mut s = setup(
        &[big.clone(), other.clone(), tiny.clone(), broken.clone()],
        all_cids,
        &[v1_sha256(&broken)],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;

    let absent = Bytes::from_static(b"absent");
    let message = wantlist(vec![
        want(v0(&big), WantType::Block, true),
        want(v1_blake2b(&big), WantType::Block, true),
        want(v1_sha256(&other), WantType::Have, true),
        want(v1_blake2b(&tiny), WantType::Have, false), // tiny: the block itself
        want(v1_sha256(&absent), WantType::Have, true),
        want(v1_blake2b(&absent), WantType::Block, true),
        want(v0(&absent), WantType::Block, false), // absent, no DONT_HAVE asked
        want(v1_sha256(&broken), WantType::Block, true), // store error: no answer
    ]);
    let _stream = s.send(ProtocolVersion::V1_2_0, &message).await;

    let mut answers = Answers::default();
    let mut streams = HashSet::new();
    while answers.count() < 6 {
        let r = s.next().await;
        assert_eq!(
            r.version,
            ProtocolVersion::V1_2_0,
            "answered with the peer's protocol"
        );
        assert!(r.frame_len <= MAX_MESSAGE_SIZE);
        streams.insert(r.stream);
        answers.add(&r.message);
    }
    s.nothing_more().await;

    assert_eq!(answers.blocks.len(), 3);
    assert_eq!(answers.blocks[&v0(&big)], big);
    assert_eq!(answers.blocks[&v1_blake2b(&big)], big);
    assert_eq!(answers.blocks[&v1_blake2b(&tiny)], tiny);
    assert_eq!(answers.prefixes[&v0(&big)], vec![0x00, 0x70, 0x12, 0x20]);
    assert_eq!(
        answers.prefixes[&v1_blake2b(&big)],
        vec![0x01, 0x55, 0xa0, 0xe4, 0x02, 0x20]
    );
    assert_eq!(
        CidPrefix::parse(&answers.prefixes[&v1_blake2b(&tiny)])
            .unwrap()
            .multihash_code,
        0xb220
    );
    assert_eq!(answers.haves, HashSet::from([v1_sha256(&other)]));
    assert_eq!(
        answers.dont_haves,
        HashSet::from([v1_sha256(&absent), v1_blake2b(&absent)])
    );

    let stats = s
        .stats_until(|st| st.messages_sent >= 1 && st.store_errors == 1)
        .await;
    assert_eq!(stats.messages_received, 1);
    assert_eq!(stats.want_blocks_received, 5);
    assert_eq!(stats.want_haves_received, 3);
    assert_eq!(stats.blocks_sent, 3);
    assert_eq!(stats.haves_sent, 1);
    assert_eq!(stats.dont_haves_sent, 2);
    assert_eq!(
        stats.store_errors, 1,
        "the failing block is not a DONT_HAVE"
    );

    // A second round soon after reuses the server's stream.
    let _stream2 = s
        .send(
            ProtocolVersion::V1_2_0,
            &wantlist(vec![want(v1_sha256(&other), WantType::Block, false)]),
        )
        .await;
    let r = s.next().await;
    assert_eq!(r.message.payload[0].data, other);
    streams.insert(r.stream);
    assert_eq!(streams.len(), 1, "one outbound stream reused: {streams:?}");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn bitswap_1_0_0_sends_cidv0_blocks_only() {
    let a = Bytes::from_static(b"block a");
    let b = Bytes::from_static(b"block b");
    let mut s = setup(
        &[a.clone(), b.clone()],
        all_cids,
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    let message = wantlist(vec![
        // Want types and send_dont_have do not exist in 1.0.0: a WANT_BLOCK, no DONT_HAVE.
        want(v0(&a), WantType::Have, true),
        want(v1_blake2b(&b), WantType::Block, true), // CIDv1 cannot be sent in 1.0.0
        want(v0(b"absent"), WantType::Block, true),
        want(v0(&b), WantType::Block, false),
    ]);
    let _stream = s.send(ProtocolVersion::V1_0_0, &message).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = s.next().await;
        assert_eq!(r.version, ProtocolVersion::V1_0_0);
        assert!(r.message.payload.is_empty());
        assert!(r.message.block_presences.is_empty());
        got.extend(r.message.blocks);
    }
    s.nothing_more().await;
    got.sort();
    assert_eq!(got, vec![a, b]);
    let stats = s.stats_until(|st| st.wants_dropped == 1).await;
    assert_eq!(stats.dont_haves_sent, 0);
    assert_eq!(stats.want_haves_received, 0);
}

#[tokio::test]
async fn bitswap_1_1_0_sends_payload_without_presences() {
    let a = Bytes::from_static(b"one-one-zero");
    let mut s = setup(
        std::slice::from_ref(&a),
        all_cids,
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    let message = wantlist(vec![
        want(v1_blake2b(&a), WantType::Block, true),
        want(v1_blake2b(b"absent"), WantType::Have, true),
    ]);
    let _stream = s.send(ProtocolVersion::V1_1_0, &message).await;
    let r = s.next().await;
    assert_eq!(r.version, ProtocolVersion::V1_1_0);
    assert!(r.message.blocks.is_empty() && r.message.block_presences.is_empty());
    assert_eq!(r.message.payload.len(), 1);
    let block = &r.message.payload[0];
    assert_eq!(block.prefix.to_cid(&block.data).unwrap(), v1_blake2b(&a));
    s.nothing_more().await;
}

#[tokio::test]
async fn legacy_protocol_id_is_served() {
    let a = Bytes::from_static(b"legacy");
    let mut s = setup(
        std::slice::from_ref(&a),
        all_cids,
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    let _stream = s
        .send(
            ProtocolVersion::Legacy,
            &wantlist(vec![want(v0(&a), WantType::Block, false)]),
        )
        .await;
    let r = s.next().await;
    assert_eq!(r.version, ProtocolVersion::Legacy);
    assert_eq!(r.message.blocks, vec![a]);
}

#[tokio::test]
async fn cancel_before_the_answer() {
    let a = Bytes::from_static(b"cancelled");
    let b = Bytes::from_static(b"kept");
    let mut s = setup(
        &[a.clone(), b.clone()],
        all_cids,
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    s.gate.send(false).unwrap(); // block reads wait
    let mut stream = s
        .send(
            ProtocolVersion::V1_2_0,
            &wantlist(vec![
                want(v1_sha256(&a), WantType::Block, true),
                want(v1_sha256(&b), WantType::Block, true),
            ]),
        )
        .await;
    let cancel = wantlist(vec![WantlistEntry {
        cancel: true,
        ..want(v1_sha256(&a), WantType::Block, false)
    }]);
    write_frame(&mut stream, &cancel.encode_frame())
        .await
        .unwrap();
    s.stats_until(|st| st.cancels_received == 1).await;
    s.gate.send(true).unwrap();

    let r = s.next().await;
    assert_eq!(r.message.payload.len(), 1);
    assert_eq!(r.message.payload[0].data, b);
    assert!(r.message.block_presences.is_empty());
    s.nothing_more().await;
    let stats = s.handle.stats();
    assert_eq!(stats.blocks_sent, 1);
    assert_eq!(
        stats.answers_cancelled, 1,
        "the cancel voided a lookup in progress"
    );
}

#[tokio::test]
async fn a_block_goes_out_before_the_rest_of_its_batch_is_read() {
    let fast = Bytes::from_static(b"read at once");
    let slow = Bytes::from_static(b"read later");
    let mut s = setup(
        &[fast.clone(), slow.clone()],
        all_cids,
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    s.slow.lock().unwrap().insert(v1_sha256(&slow));
    s.gate.send(false).unwrap(); // the slow block's read waits
    let _stream = s
        .send(
            ProtocolVersion::V1_2_0,
            &wantlist(vec![
                want(v1_sha256(&fast), WantType::Block, true),
                want(v1_sha256(&slow), WantType::Block, true),
            ]),
        )
        .await;
    let r = s.next().await;
    assert_eq!(r.message.payload.len(), 1, "the block read is sent alone");
    assert_eq!(r.message.payload[0].data, fast);
    s.gate.send(true).unwrap();
    let r = s.next().await;
    assert_eq!(r.message.payload.len(), 1);
    assert_eq!(r.message.payload[0].data, slow);
    s.nothing_more().await;
    assert_eq!(s.handle.stats().blocks_sent, 2);
}

#[tokio::test]
async fn oversized_message_is_refused() {
    let a = Bytes::from_static(b"still served");
    let mut s = setup(
        std::slice::from_ref(&a),
        all_cids,
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    let mut stream = s
        .client
        .open_stream(s.server, ProtocolVersion::V1_2_0.protocol())
        .await
        .unwrap();
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(MAX_MESSAGE_SIZE + 1, &mut prefix);
    stream.write_all(prefix).await.unwrap();
    stream.flush().await.unwrap();
    // Whatever the client still writes, the server has reset the stream: reading ends.
    let _ = stream.write_all(&vec![0u8; 64 * 1024]).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("the server closes the stream");
    assert!(matches!(read, Ok(0) | Err(_)), "stream closed: {read:?}");
    s.stats_until(|st| st.protocol_errors == 1).await;

    // The server still answers on a new stream.
    let _stream = s
        .send(
            ProtocolVersion::V1_2_0,
            &wantlist(vec![want(v0(&a), WantType::Block, false)]),
        )
        .await;
    let r = s.next().await;
    assert_eq!(r.message.payload[0].data, a);
}

#[tokio::test]
async fn many_blocks_are_split_into_messages_within_the_limit() {
    // 12 blocks of 700 KiB and one of 2 MiB: 10.2 MiB in all.
    let mut blocks: Vec<Bytes> = (0..12u8)
        .map(|i| Bytes::from(vec![i; 700 * 1024]))
        .collect();
    blocks.push(Bytes::from(vec![99u8; 2 * 1024 * 1024]));
    let mut s = setup(
        &blocks,
        |d| vec![v1_sha256(d)],
        &[],
        BitswapConfig::default(),
        &ProtocolVersion::ALL,
    )
    .await;
    let entries = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| WantlistEntry {
            priority: i as i32,
            ..want(v1_sha256(b), WantType::Block, true)
        })
        .collect();
    let _stream = s.send(ProtocolVersion::V1_2_0, &wantlist(entries)).await;
    let mut answers = Answers::default();
    let mut messages = 0;
    let mut order = Vec::new();
    while answers.blocks.len() < blocks.len() {
        let r = s.next().await;
        assert!(
            r.frame_len <= MAX_MESSAGE_SIZE,
            "frame of {} bytes",
            r.frame_len
        );
        messages += 1;
        for b in &r.message.payload {
            order.push(b.data[0]);
        }
        answers.add(&r.message);
    }
    assert!(messages >= 3, "{messages} messages for 10.2 MiB");
    for b in &blocks {
        assert_eq!(&answers.blocks[&v1_sha256(b)], b);
    }
    // Highest priority (the 2 MiB block, then 11, 10, ...) first.
    assert_eq!(order[0], 99);
    assert_eq!(order[1], 11);
    s.nothing_more().await;
}

#[tokio::test]
async fn peer_without_bitswap_inbound_is_dropped() {
    let a = Bytes::from_static(b"unreachable");
    let s = setup(
        std::slice::from_ref(&a),
        all_cids,
        &[],
        BitswapConfig::default(),
        &[], // the client accepts no Bitswap stream
    )
    .await;
    let mut s = s;
    let _stream = s
        .send(
            ProtocolVersion::V1_2_0,
            &wantlist(vec![want(v0(&a), WantType::Block, false)]),
        )
        .await;
    let stats = s
        .stats_until(|st| st.stream_errors >= 1 && st.peers == 0)
        .await;
    assert_eq!(stats.messages_sent, 0);
    let mut unresponsive = s.handle.take_unresponsive_peers().unwrap();
    assert!(
        unresponsive.try_recv().is_err(),
        "a peer that refuses the stream is not reported as unresponsive"
    );
}

#[tokio::test]
async fn peer_not_reading_is_dropped_after_write_timeout() {
    let blocks: Vec<Bytes> = (0..4u8)
        .map(|i| Bytes::from(vec![i; 1024 * 1024]))
        .collect();
    let budget = MemoryBudget::new(256 * 1024 * 1024);
    let config = BitswapConfig {
        write_timeout: Duration::from_secs(1),
        budget: budget.clone(),
        ..BitswapConfig::default()
    };
    let mut s = setup(&blocks, |d| vec![v1_sha256(d)], &[], config, &[]).await;
    // Accept the server's stream but never read it.
    let mut incoming = s.client.accept(ProtocolVersion::V1_2_0.protocol()).unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            held.push(stream);
        }
    });
    let entries = blocks
        .iter()
        .map(|b| want(v1_sha256(b), WantType::Block, false))
        .collect();
    let _stream = s.send(ProtocolVersion::V1_2_0, &wantlist(entries)).await;
    let stats = s
        .stats_until(|st| st.stream_errors >= 1 && st.peers == 0)
        .await;
    assert!(
        stats.blocks_sent < 4,
        "the flow-controlled writes stalled: {stats:?}"
    );
    assert_eq!(stats.peers_dropped, 1);
    let responses = budget.stats().holders[2].clone();
    assert_eq!(responses.name, "bitswap_responses");
    assert!(
        responses.peak >= 1024 * 1024,
        "the stalled frames were charged: {responses:?}"
    );
    assert_eq!(budget.in_use(), 0, "dropping the peer released its memory");
    let mut unresponsive = s.handle.take_unresponsive_peers().unwrap();
    assert_eq!(
        unresponsive.try_recv().ok(),
        Some(s.client_peer),
        "the peer is reported so that the swarm disconnects it"
    );
    assert!(s.handle.take_unresponsive_peers().is_none());
    holder.abort();
}

#[tokio::test]
async fn wants_past_the_wantlists_share_are_shed_never_dont_have() {
    let blocks: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 100])).collect();
    let budget = MemoryBudget::new(64 * 1024 * 1024);
    budget.set_cap(Holder::BitswapWantlists, 10 * WANT_ENTRY_BYTES);
    let config = BitswapConfig {
        budget: budget.clone(),
        ..BitswapConfig::default()
    };
    let mut s = setup(
        &blocks,
        |d| vec![v1_sha256(d)],
        &[],
        config,
        &[ProtocolVersion::V1_2_0],
    )
    .await;
    // 10 absent wants first, then the 10 stored blocks: only the first 10 fit.
    let absent: Vec<Cid> = (0..10u8).map(|i| v1_sha256(&[i, 1, 2])).collect();
    let stored: Vec<Cid> = blocks.iter().map(|b| v1_sha256(b)).collect();
    let entries = absent
        .iter()
        .chain(&stored)
        .map(|c| want(*c, WantType::Have, true))
        .collect();
    let _stream = s.send(ProtocolVersion::V1_2_0, &wantlist(entries)).await;
    let mut answers = Answers::default();
    while answers.count() < 10 {
        answers.add(&s.next().await.message);
    }
    s.nothing_more().await;
    assert_eq!(answers.dont_haves, absent.iter().copied().collect());
    assert!(answers.haves.is_empty() && answers.blocks.is_empty());
    let stats = s.stats_until(|st| st.peers == 0).await;
    assert_eq!(stats.wants_shed, 10);
    assert_eq!(stats.want_have_outcomes.shed, 10);
    assert_eq!(stats.want_have_outcomes.not_found, 10);
    // Re-sent once memory is free, the stored blocks are answered (tiny blocks are sent).
    let entries = stored
        .iter()
        .map(|c| want(*c, WantType::Have, true))
        .collect();
    let _stream2 = s.send(ProtocolVersion::V1_2_0, &wantlist(entries)).await;
    let mut again = Answers::default();
    while again.count() < 10 {
        again.add(&s.next().await.message);
    }
    assert_eq!(again.blocks.len(), 10);
    assert!(again.dont_haves.is_empty());
}
