//! The sans-I/O rules of answering inbound requests ([`InboundHandler`]), used by the
//! service for every inbound stream and testable alone (../shared/specs/kad-dht.md, "RPC
//! Messages").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use hydrant_budget::{Holder, MemoryBudget};
use libp2p::{Multiaddr, PeerId};

use crate::kbucket::{Key, RoutingTable};
use crate::protocol::{
    MAX_FRAME_SIZE, MAX_PEERS_PER_MESSAGE, PeerInfo, Record, Request, Response, decode_request,
    encode_response, read_frame, write_frame,
};
use crate::stats::bump;
use crate::{
    AddressPolicy, DhtStats, ProviderInfo, ProviderLookup, ProviderSink, REQUEST_CHARGE,
    ValueStore, lock,
};

/// Why an inbound request was refused (the stream is closed without an answer).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No `providerPeers` entry is the sending peer (spec, "Content Provider
    /// Advertisement", check 2).
    #[error("no provider entry is the sender")]
    ProviderNotSender,
    /// The ADD_PROVIDER key is not a multihash.
    #[error("key is not a multihash")]
    NotMultihash,
    /// The value store refused the record.
    #[error("record refused: {0}")]
    ValueRejected(String),
}

/// The rules for answering one inbound request; no I/O (used by the service, testable alone).
pub struct InboundHandler {
    table: Arc<Mutex<RoutingTable>>,
    providers: Arc<dyn ProviderLookup>,
    sink: Arc<dyn ProviderSink>,
    values: Arc<dyn ValueStore>,
    stats: Arc<DhtStats>,
    k: usize,
    provider_lookup_deadline: Duration,
    budget: MemoryBudget,
    /// Every head of this service with its addresses: offered as closer peers beside the table.
    heads: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Which provider addresses are offered (see [`AddressPolicy`]).
    addresses: AddressPolicy,
}

impl InboundHandler {
    /// Charges each request served by [`Self::serve`] to `budget` (default: unlimited).
    #[must_use]
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Offers `heads` (every head of the service, with their addresses) as closer peers beside
    /// the routing table's members, by the same XOR distance: a head's siblings always answer,
    /// and a FIND_NODE for a head's own ID finds it (as go-libp2p-kad-dht answers its own ID with
    /// itself), which is what go-libp2p-kad-dht's "lookup check" asks before it admits a peer
    /// to its table: a head with an empty table still passes it.
    #[must_use]
    pub fn with_heads(mut self, heads: Vec<(PeerId, Vec<Multiaddr>)>) -> Self {
        self.heads = heads;
        self
    }

    /// Offers the providers of GET_PROVIDERS answers, other than the heads, with their
    /// addresses [filtered](AddressPolicy::filter) by `policy` (go-libp2p-kad-dht's
    /// `handleGetProviders` with the dual DHT's address filters).
    /// Default [`AddressPolicy::Any`].
    #[must_use]
    pub fn with_addresses(mut self, policy: AddressPolicy) -> Self {
        self.addresses = policy;
        self
    }

    /// A handler over a shared table and stores.
    pub fn new(
        table: Arc<Mutex<RoutingTable>>,
        providers: Arc<dyn ProviderLookup>,
        sink: Arc<dyn ProviderSink>,
        values: Arc<dyn ValueStore>,
        stats: Arc<DhtStats>,
        k: usize,
        provider_lookup_deadline: Duration,
    ) -> InboundHandler {
        InboundHandler {
            table,
            providers,
            sink,
            values,
            stats,
            k,
            provider_lookup_deadline,
            budget: MemoryBudget::unlimited(),
            heads: Vec::new(),
            addresses: AddressPolicy::Any,
        }
    }

    /// The `k` peers closest to `key` among the table's members and the heads, nearest first,
    /// never the requester.
    fn closer(&self, key: &[u8], from: &PeerId) -> Vec<PeerInfo> {
        let target = Key::from_bytes(key);
        let mut peers = lock(&self.table).closest(&target, self.k, Some(from));
        for (head, addrs) in &self.heads {
            if head != from && !peers.iter().any(|(p, _)| p == head) {
                peers.push((*head, addrs.clone()));
            }
        }
        peers.sort_by_key(|(p, _)| Key::from_peer(p).distance(&target));
        peers.truncate(self.k);
        peers
            .into_iter()
            .map(|(peer, addrs)| PeerInfo::new(peer, addrs))
            .collect()
    }

    /// The providers to answer with (at most [`MAX_PEERS_PER_MESSAGE`]): the heads as they
    /// are, the others with their addresses filtered by the policy (a provider left without
    /// addresses is still named, as go does: the requester may look its addresses up).
    fn offered(&self, list: Vec<ProviderInfo>) -> Vec<PeerInfo> {
        list.into_iter()
            .take(MAX_PEERS_PER_MESSAGE)
            .map(|p| {
                if self.heads.iter().any(|(h, _)| *h == p.peer) {
                    PeerInfo::new(p.peer, p.addrs)
                } else {
                    PeerInfo::new(p.peer, self.addresses.filter(p.addrs))
                }
            })
            .collect()
    }

    /// Answers `request` from peer `from` (../shared/specs/kad-dht.md, "RPC Messages"):
    /// `Ok(Some(answer))`, or `Err` to close the stream without answer. `from_addrs` are the
    /// sender's known listen addresses, used for ADD_PROVIDER without addresses.
    ///
    /// # Errors
    /// [`Refusal`].
    pub async fn handle(
        &self,
        from: PeerId,
        from_addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Option<Response>, Refusal> {
        let kind = request.message_type();
        let i = kind.index();
        let result = self.answer(from, from_addrs, request).await;
        match &result {
            Ok(_) => {}
            Err(_) => bump(&self.stats.inbound_refused[i]),
        }
        result
    }

    async fn answer(
        &self,
        from: PeerId,
        from_addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Option<Response>, Refusal> {
        let stats = &self.stats;
        let i = request.message_type().index();
        match request {
            Request::FindNode { key } => {
                bump(&stats.inbound_ok[i]);
                Ok(Some(Response::FindNode {
                    closer_peers: self.closer(&key, &from),
                }))
            }
            Request::GetProviders { key } => {
                let closer_peers = self.closer(&key, &from);
                let found = tokio::time::timeout(
                    self.provider_lookup_deadline,
                    self.providers.providers(&key),
                )
                .await;
                let providers = match found.map(|r| r.map(|list| self.offered(list))) {
                    Ok(Ok(list)) if list.is_empty() => {
                        bump(&stats.inbound_not_found[i]);
                        Vec::new()
                    }
                    Ok(Ok(list)) => {
                        bump(&stats.inbound_ok[i]);
                        list
                    }
                    Ok(Err(_)) | Err(_) => {
                        bump(&stats.inbound_error[i]);
                        Vec::new()
                    }
                };
                Ok(Some(Response::GetProviders {
                    closer_peers,
                    providers,
                }))
            }
            Request::AddProvider { key, providers } => {
                if multihash::Multihash::<64>::from_bytes(&key).is_err() {
                    return Err(Refusal::NotMultihash);
                }
                let Some(mine) = providers.into_iter().find(|p| p.peer == from) else {
                    return Err(Refusal::ProviderNotSender);
                };
                let addrs = if mine.addrs.is_empty() {
                    from_addrs
                } else {
                    mine.addrs
                };
                if self
                    .sink
                    .add(key.clone(), ProviderInfo { peer: from, addrs })
                {
                    bump(&stats.inbound_ok[i]);
                } else {
                    bump(&stats.providers_dropped);
                }
                Ok(Some(Response::AddProvider { key }))
            }
            Request::GetValue { key } => {
                let closer_peers = self.closer(&key, &from);
                let record = self.values.get(&key).map(|value| Record {
                    key: key.clone(),
                    value,
                });
                bump(if record.is_some() {
                    &stats.inbound_ok[i]
                } else {
                    &stats.inbound_not_found[i]
                });
                Ok(Some(Response::GetValue {
                    record,
                    closer_peers,
                }))
            }
            Request::PutValue { record } => {
                self.values
                    .put(&record.key, record.value.clone())
                    .map_err(Refusal::ValueRejected)?;
                bump(&stats.inbound_ok[i]);
                Ok(Some(Response::PutValue { record }))
            }
            Request::Ping => {
                bump(&stats.inbound_ok[i]);
                Ok(Some(Response::Ping))
            }
        }
    }

    /// Serves one inbound stream: answers requests until the peer closes it, a request is
    /// invalid or refused, or `idle` passes without a request. Every frame is at most
    /// [`MAX_FRAME_SIZE`] bytes.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        from: PeerId,
        from_addrs: Vec<Multiaddr>,
        stream: &mut S,
        idle: Duration,
    ) {
        loop {
            let body = match tokio::time::timeout(idle, read_frame(stream, MAX_FRAME_SIZE)).await {
                Ok(Ok(Some(body))) => body,
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(_)) => {
                    bump(&self.stats.inbound_invalid);
                    return;
                }
            };
            let Ok(_grant) = self.budget.try_acquire(Holder::Dht, REQUEST_CHARGE) else {
                bump(&self.stats.inbound_shed);
                return;
            };
            let request = match decode_request(&body) {
                Ok(r) => r,
                Err(_) => {
                    bump(&self.stats.inbound_invalid);
                    return;
                }
            };
            match self.handle(from, from_addrs.clone(), request).await {
                Ok(Some(response)) => {
                    let body = encode_response(&response);
                    match tokio::time::timeout(idle, write_frame(stream, &body)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
        let _ = stream.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        LookupError, MAX_KEY_LEN, MessageType, NoProviders, RejectAllValues, TableConfig,
        decode_response, encode_request, frame,
    };
    use std::pin::Pin;
    use std::sync::atomic::Ordering;
    use std::task::{Context, Poll};
    use std::time::Instant;

    #[derive(Default)]
    struct Sink(Mutex<Vec<(Vec<u8>, ProviderInfo)>>);
    impl ProviderSink for Sink {
        fn add(&self, key: Vec<u8>, provider: ProviderInfo) -> bool {
            lock(&self.0).push((key, provider));
            true
        }
    }

    struct Failing;
    #[async_trait::async_trait]
    impl ProviderLookup for Failing {
        async fn providers(&self, _key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError> {
            Err(LookupError("index unavailable".into()))
        }
    }

    /// An in-memory stream: reads `input`, collects writes.
    struct Pipe {
        input: futures::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl AsyncRead for Pipe {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.input).poll_read(cx, buf)
        }
    }
    impl AsyncWrite for Pipe {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.output.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn peer(i: u8) -> PeerId {
        libp2p::identity::Keypair::ed25519_from_bytes([i; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn addr(i: u8) -> Multiaddr {
        format!("/ip4/10.{i}.0.1/tcp/4001").parse().unwrap()
    }

    /// A head with an empty routing table still answers a FIND_NODE for its own ID with itself
    /// (go-libp2p-kad-dht's lookup check) and offers its siblings; never the requester.
    #[tokio::test]
    async fn heads_offer_themselves_and_their_siblings() {
        let heads = vec![(peer(0), vec![addr(0)]), (peer(1), vec![addr(1)])];
        let table = Arc::new(Mutex::new(RoutingTable::new(
            &[peer(0), peer(1)],
            TableConfig::default(),
        )));
        let h = InboundHandler::new(
            table,
            Arc::new(NoProviders),
            Arc::new(Sink::default()),
            Arc::new(RejectAllValues),
            Arc::new(DhtStats::default()),
            20,
            Duration::from_secs(1),
        )
        .with_heads(heads);
        let find = |key: PeerId, from: PeerId| {
            let request = Request::FindNode {
                key: key.to_bytes(),
            };
            let h = &h;
            async move {
                match h.handle(from, vec![], request).await.unwrap() {
                    Some(Response::FindNode { closer_peers }) => closer_peers,
                    other => panic!("{other:?}"),
                }
            }
        };
        let answer = find(peer(0), peer(9)).await;
        assert_eq!(
            answer[0],
            PeerInfo::new(peer(0), vec![addr(0)]),
            "itself first"
        );
        assert!(
            answer.contains(&PeerInfo::new(peer(1), vec![addr(1)])),
            "and its sibling"
        );
        let answer = find(peer(0), peer(1)).await;
        assert_eq!(
            answer,
            vec![PeerInfo::new(peer(0), vec![addr(0)])],
            "never the requester"
        );
        // Any key: the heads are candidates by distance like table members.
        assert_eq!(find(peer(7), peer(9)).await.len(), 2);
    }

    /// Provider answers under the WAN and LAN policies: other peers' records lose the
    /// addresses the side does not pass on; the heads' own record keeps every address.
    #[tokio::test]
    async fn provider_answers_filter_other_peers_addresses_by_policy() {
        struct Both(Vec<ProviderInfo>);
        #[async_trait::async_trait]
        impl ProviderLookup for Both {
            async fn providers(&self, _key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError> {
                Ok(self.0.clone())
            }
        }
        let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let public: Multiaddr = "/ip4/8.8.8.8/tcp/4001".parse().unwrap();
        let ours = ProviderInfo {
            peer: peer(0),
            addrs: vec![loopback.clone()],
        };
        let theirs = ProviderInfo {
            peer: peer(40),
            addrs: vec![loopback.clone(), addr(40), public.clone()],
        };
        let answer = |policy| {
            let h = InboundHandler::new(
                Arc::new(Mutex::new(RoutingTable::new(
                    &[peer(0)],
                    TableConfig::default(),
                ))),
                Arc::new(Both(vec![ours.clone(), theirs.clone()])),
                Arc::new(Sink::default()),
                Arc::new(RejectAllValues),
                Arc::new(DhtStats::default()),
                20,
                Duration::from_secs(1),
            )
            .with_heads(vec![(peer(0), vec![loopback.clone()])])
            .with_addresses(policy);
            async move {
                let request = Request::GetProviders {
                    key: multihash_key(),
                };
                match h.handle(peer(9), vec![], request).await.unwrap() {
                    Some(Response::GetProviders { providers, .. }) => providers,
                    other => panic!("{other:?}"),
                }
            }
        };
        let head = PeerInfo::new(peer(0), vec![loopback.clone()]);
        assert_eq!(
            answer(AddressPolicy::Public).await,
            vec![head.clone(), PeerInfo::new(peer(40), vec![public.clone()])]
        );
        assert_eq!(
            answer(AddressPolicy::Private).await,
            vec![
                head.clone(),
                PeerInfo::new(peer(40), vec![addr(40), public])
            ]
        );
        assert_eq!(
            answer(AddressPolicy::Any).await,
            vec![head, PeerInfo::new(theirs.peer, theirs.addrs.clone())]
        );
    }

    fn handler(
        sink: Arc<Sink>,
        providers: Arc<dyn ProviderLookup>,
    ) -> (InboundHandler, Arc<DhtStats>) {
        let table = Arc::new(Mutex::new(RoutingTable::new(
            &[peer(0)],
            TableConfig::default(),
        )));
        {
            let mut t = lock(&table);
            for i in 1..30 {
                t.insert_verified(peer(i), vec![addr(i)], Instant::now());
            }
        }
        let stats = Arc::new(DhtStats::default());
        let h = InboundHandler::new(
            table,
            providers,
            sink,
            Arc::new(RejectAllValues),
            stats.clone(),
            20,
            Duration::from_secs(1),
        );
        (h, stats)
    }

    fn multihash_key() -> Vec<u8> {
        let mut k = vec![0x12, 0x20];
        k.extend_from_slice(&[5u8; 32]);
        k
    }

    #[tokio::test]
    async fn add_provider_from_another_peer_is_refused() {
        let sink = Arc::new(Sink::default());
        let (h, stats) = handler(sink.clone(), Arc::new(NoProviders));
        let request = Request::AddProvider {
            key: multihash_key(),
            providers: vec![PeerInfo::new(peer(50), vec![addr(50)])],
        };
        assert_eq!(
            h.handle(peer(51), vec![], request).await,
            Err(Refusal::ProviderNotSender)
        );
        assert!(lock(&sink.0).is_empty());
        assert_eq!(
            stats.inbound_refused[MessageType::AddProvider.index()].load(Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn add_provider_from_the_provider_is_stored_with_fallback_addresses() {
        let sink = Arc::new(Sink::default());
        let (h, _) = handler(sink.clone(), Arc::new(NoProviders));
        let request = Request::AddProvider {
            key: multihash_key(),
            providers: vec![
                PeerInfo::new(peer(60), vec![]),
                PeerInfo::new(peer(61), vec![addr(61)]),
            ],
        };
        let answer = h.handle(peer(60), vec![addr(99)], request).await.unwrap();
        assert_eq!(
            answer,
            Some(Response::AddProvider {
                key: multihash_key()
            })
        );
        let stored = lock(&sink.0).clone();
        assert_eq!(
            stored,
            vec![(
                multihash_key(),
                ProviderInfo {
                    peer: peer(60),
                    addrs: vec![addr(99)]
                }
            )]
        );
        // A key that is no multihash is refused.
        let bad = Request::AddProvider {
            key: vec![0xff, 0xff, 0xff],
            providers: vec![PeerInfo::new(peer(60), vec![addr(60)])],
        };
        assert_eq!(
            h.handle(peer(60), vec![], bad).await,
            Err(Refusal::NotMultihash)
        );
    }

    #[tokio::test]
    async fn find_node_answers_k_closest_without_the_requester() {
        let (h, _) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let key = peer(3).to_bytes();
        let Some(Response::FindNode { closer_peers }) = h
            .handle(peer(3), vec![], Request::FindNode { key: key.clone() })
            .await
            .unwrap()
        else {
            panic!("wrong answer");
        };
        assert_eq!(closer_peers.len(), 20);
        assert!(closer_peers.iter().all(|p| p.peer != peer(3)));
        let mut expected: Vec<PeerId> = (1..30).map(peer).filter(|p| *p != peer(3)).collect();
        expected.sort_by_key(|p| Key::from_peer(p).distance(&Key::from_bytes(&key)));
        let got: Vec<PeerId> = closer_peers.iter().map(|p| p.peer).collect();
        assert_eq!(got, expected[..20]);
    }

    #[tokio::test]
    async fn provider_lookup_errors_answer_closer_peers_and_count_apart() {
        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(Failing));
        let answer = h
            .handle(
                peer(70),
                vec![],
                Request::GetProviders {
                    key: multihash_key(),
                },
            )
            .await
            .unwrap();
        let Some(Response::GetProviders {
            closer_peers,
            providers,
        }) = answer
        else {
            panic!("wrong answer");
        };
        assert!(providers.is_empty());
        assert_eq!(closer_peers.len(), 20);
        let i = MessageType::GetProviders.index();
        assert_eq!(stats.inbound_error[i].load(Ordering::Relaxed), 1);
        assert_eq!(stats.inbound_not_found[i].load(Ordering::Relaxed), 0);

        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        h.handle(
            peer(70),
            vec![],
            Request::GetProviders {
                key: multihash_key(),
            },
        )
        .await
        .unwrap();
        assert_eq!(stats.inbound_not_found[i].load(Ordering::Relaxed), 1);
        assert_eq!(stats.inbound_error[i].load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn put_value_is_refused_by_reject_all() {
        let (h, _) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let record = Record {
            key: b"/ipns/x".to_vec(),
            value: b"v".to_vec(),
        };
        assert!(matches!(
            h.handle(peer(9), vec![], Request::PutValue { record })
                .await,
            Err(Refusal::ValueRejected(_))
        ));
    }

    #[tokio::test]
    async fn a_full_memory_budget_resets_the_stream_unanswered() {
        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let budget = MemoryBudget::new(REQUEST_CHARGE);
        let h = h.with_budget(budget.clone());
        let held = budget.try_acquire(Holder::Gateway, 1).unwrap();
        let mut pipe = Pipe {
            input: futures::io::Cursor::new(frame(&encode_request(&Request::Ping))),
            output: Vec::new(),
        };
        h.serve(peer(5), vec![], &mut pipe, Duration::from_secs(5))
            .await;
        assert!(pipe.output.is_empty(), "no answer while the budget is full");
        assert_eq!(stats.inbound_shed.load(Ordering::Relaxed), 1);
        drop(held);
        let mut pipe = Pipe {
            input: futures::io::Cursor::new(frame(&encode_request(&Request::Ping))),
            output: Vec::new(),
        };
        h.serve(peer(5), vec![], &mut pipe, Duration::from_secs(5))
            .await;
        assert!(!pipe.output.is_empty(), "answered once memory is free");
        assert_eq!(budget.in_use(), 0, "the request's charge is released");
    }

    #[tokio::test]
    async fn stream_serves_many_requests_and_closes_on_an_oversized_key() {
        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let mut input = frame(&encode_request(&Request::Ping));
        input.extend(frame(&encode_request(&Request::FindNode {
            key: b"abc".to_vec(),
        })));
        // A key over 80 bytes: the stream is closed without an answer...
        let mut oversized = crate::protocol::proto::Message {
            r#type: MessageType::FindNode.to_wire(),
            key: vec![1; MAX_KEY_LEN + 1],
            ..Default::default()
        };
        input.extend(frame(&prost::Message::encode_to_vec(&oversized)));
        // ...so this later request is never answered.
        oversized.key = vec![1; 4];
        input.extend(frame(&prost::Message::encode_to_vec(&oversized)));
        let mut pipe = Pipe {
            input: futures::io::Cursor::new(input),
            output: Vec::new(),
        };
        h.serve(peer(5), vec![], &mut pipe, Duration::from_secs(5))
            .await;
        let mut out = futures::io::Cursor::new(pipe.output);
        let first = read_frame(&mut out, MAX_FRAME_SIZE).await.unwrap().unwrap();
        assert_eq!(
            decode_response(&first, MessageType::Ping).unwrap(),
            Response::Ping
        );
        let second = read_frame(&mut out, MAX_FRAME_SIZE).await.unwrap().unwrap();
        assert!(matches!(
            decode_response(&second, MessageType::FindNode).unwrap(),
            Response::FindNode { .. }
        ));
        assert!(
            read_frame(&mut out, MAX_FRAME_SIZE)
                .await
                .unwrap()
                .is_none(),
            "no third answer"
        );
        assert_eq!(stats.inbound_invalid.load(Ordering::Relaxed), 1);
    }
}
