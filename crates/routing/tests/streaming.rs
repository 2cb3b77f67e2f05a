//! NDJSON answers are written as the router yields records (http-routing-v1.md
//! § "Streaming"), and a client that goes away cancels the lookup. Fault injection: a router
//! whose stream yields one record, then waits until the test releases it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cid::Cid;
use futures::StreamExt as _;
use hydrant_routing::{
    ContentRouter, PeerRecord, Record, RecordStream, RouterError, RoutingConfig, router,
};
use libp2p::PeerId;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Notify;

mod common;
use common::{header, peer, serve_app};

/// Yields `first` (or fails with `fail_first`), then waits for `release`, then yields
/// `second`. `dropped` is set when the stream is dropped.
#[derive(Default)]
struct Trickle {
    fail_first: Option<RouterError>,
    release: Notify,
    dropped: AtomicBool,
}

/// Sets the flag when dropped, i.e. when the stream holding it is.
struct DropFlag(Arc<Trickle>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

fn rec(seed: u8) -> Record {
    Record::Peer(PeerRecord::new(
        peer(seed),
        vec!["/ip4/192.0.2.1/tcp/4001".parse().unwrap()],
        vec!["transport-bitswap".into()],
    ))
}

#[async_trait]
impl ContentRouter for Trickle {
    async fn find_providers(&self, _: &Cid, _: usize) -> Result<Vec<Record>, RouterError> {
        unreachable!("NDJSON answers use provider_stream")
    }
    async fn find_peers(&self, _: &PeerId, _: usize) -> Result<Vec<Record>, RouterError> {
        Ok(Vec::new())
    }
    fn provider_stream(self: Arc<Self>, _: Cid, _: usize) -> RecordStream {
        let flag = DropFlag(self.clone());
        futures::stream::unfold((0, flag), |(step, flag)| async move {
            let item = match step {
                0 => match &flag.0.fail_first {
                    Some(e) => Err(e.clone()),
                    None => Ok(rec(1)),
                },
                1 => {
                    flag.0.release.notified().await;
                    Ok(rec(2))
                }
                _ => return None,
            };
            Some((item, (step + 1, flag)))
        })
        .boxed()
    }
}

fn some_cid() -> Cid {
    Cid::new_v1(
        0x55,
        cid::multihash::Multihash::wrap(0x12, &[1; 32]).unwrap(),
    )
}

async fn start(t: Trickle, config: RoutingConfig) -> (Arc<Trickle>, reqwest::Response) {
    let t = Arc::new(t);
    let base = serve_app(router(t.clone(), config)).await;
    let resp = reqwest::Client::new()
        .get(format!("{base}/routing/v1/providers/{}", some_cid()))
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    (t, resp)
}

#[tokio::test]
async fn first_record_is_written_before_the_lookup_ends() {
    let (t, mut resp) = start(Trickle::default(), RoutingConfig::default()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/x-ndjson");
    assert!(header(&resp, "cache-control").contains("max-age=300"));

    // The router is still waiting; the first line must already be on the wire.
    let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first record was held back until the lookup ended")
        .unwrap()
        .unwrap();
    let line: Value = serde_json::from_slice(chunk.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(line["ID"], peer(1).to_base58());
    assert!(!t.dropped.load(Ordering::SeqCst));

    t.release.notify_one();
    let rest = resp.text().await.unwrap();
    let lines: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["ID"], peer(2).to_base58());
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_lookup() {
    let (t, mut resp) = start(Trickle::default(), RoutingConfig::default()).await;
    resp.chunk().await.unwrap().unwrap();
    drop(resp);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !t.dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the lookup stream outlived its client");
}

#[tokio::test]
async fn an_error_before_any_record_keeps_its_status() {
    let failing = Trickle {
        fail_first: Some(RouterError::Overloaded {
            retry_after: Duration::from_secs(7),
        }),
        ..Trickle::default()
    };
    let (_, resp) = start(failing, RoutingConfig::default()).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&resp, "retry-after"), "7");
}

#[tokio::test]
async fn the_timeout_ends_a_started_stream_with_what_was_written() {
    let config = RoutingConfig {
        lookup_timeout: Duration::from_millis(300),
        ..RoutingConfig::default()
    };
    let (t, resp) = start(Trickle::default(), config).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("the stream did not end at the lookup timeout")
        .unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(t.dropped.load(Ordering::SeqCst));
}
