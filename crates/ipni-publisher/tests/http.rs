//! The HTTP publisher and the announcer, over real sockets.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::put;
use common::{World, commit_car};
use hydrant_ipni::{Advertisement, SignedHead, dag_json_cid};
use hydrant_ipni_publisher::announce::{AnnounceConfig, announce_to, announce_url, encode_message};
use hydrant_ipni_publisher::{PublisherStats, router};
use tokio::sync::watch;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn head_and_blocks_are_served_as_go_libipni_serves_them() {
    let world = World::new();
    let base = serve(router(world.source())).await;
    let client = reqwest::Client::new();
    let head = client
        .get(format!("{base}/ipni/v1/ad/head"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 204, "no chain yet");

    commit_car(&world.index, 1, 3).await;
    world.publisher(16_384, 10).publish_pending().await.unwrap();
    tokio::time::sleep(hydrant_ipni_publisher::serve::HEAD_TTL).await;
    let head = client
        .get(format!("{base}/ipni/v1/ad/head"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let head = SignedHead::from_dag_json(&head.bytes().await.unwrap()).unwrap();
    assert_eq!(head.verify().unwrap(), world.keypair.public().to_peer_id());
    assert_eq!(head.topic.as_deref(), Some("/indexer/ingest/mainnet"));

    let ad = client
        .get(format!("{base}/ipni/v1/ad/{}", head.head))
        .send()
        .await
        .unwrap();
    assert_eq!(ad.status(), 200);
    assert_eq!(
        ad.headers()["cache-control"],
        "public, max-age=29030400, immutable"
    );
    let bytes = ad.bytes().await.unwrap();
    assert_eq!(dag_json_cid(&bytes), head.head);
    let ad = Advertisement::from_dag_json(&bytes).unwrap();
    let chunk = client
        .get(format!("{base}/ipni/v1/ad/{}", ad.entries))
        .send()
        .await
        .unwrap();
    assert_eq!(chunk.status(), 200);

    let unknown = dag_json_cid(b"{}");
    let missing = client
        .get(format!("{base}/ipni/v1/ad/{unknown}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let raw = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let other = client
        .get(format!("{base}/ipni/v1/ad/{raw}"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "not a DAG-JSON block of ours");
    let bad = client
        .get(format!("{base}/ipni/v1/ad/nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// What the mock indexer received: content type and body.
type Received = (String, Vec<u8>);

#[tokio::test]
async fn announcements_are_retried_and_newer_heads_replace_older_ones() {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let failures = Arc::new(Mutex::new(1u32));
    let app = {
        let (received, failures) = (received.clone(), failures.clone());
        axum::Router::new().route(
            "/announce",
            put(
                move |headers: axum::http::HeaderMap, body: bytes::Bytes| async move {
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let kind = headers["content-type"].to_str().unwrap().to_owned();
                    received.lock().unwrap().push((kind, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
    };
    let base = serve(app).await;
    let stats = Arc::new(PublisherStats::default());
    let (heads, rx) = watch::channel(None);
    let (stop_tx, stop) = watch::channel(false);
    let addrs = Arc::new(vec![vec![4, 127, 0, 0, 1, 6, 0x1f, 0x90]]);
    let task = tokio::spawn(announce_to(
        announce_url(&base).unwrap(),
        addrs.clone(),
        rx,
        AnnounceConfig {
            first_backoff: Duration::from_millis(50),
            ..AnnounceConfig::default()
        },
        stats.clone(),
        stop,
    ));
    let first = dag_json_cid(b"{\"a\":1}");
    heads.send_replace(Some(first));
    for _ in 0..100 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = dag_json_cid(b"{\"a\":2}");
    heads.send_replace(Some(second));
    for _ in 0..100 {
        if received.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send_replace(true);
    task.await.unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (
                "application/octet-stream".into(),
                encode_message(&first, &addrs)
            ),
            (
                "application/octet-stream".into(),
                encode_message(&second, &addrs)
            ),
        ]
    );
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.announce_attempts.load(Relaxed), 3);
    assert_eq!(stats.announce_failures.load(Relaxed), 1);
}

/// An indexer told of a head by this process's announcer fetches that head, not the one the
/// source read before (the head is otherwise read from the database at most once per
/// `HEAD_TTL`).
#[tokio::test]
async fn a_head_the_local_writer_reached_is_served_at_once() {
    let world = World::new();
    let (heads, local) = watch::channel(None);
    let base = serve(router(world.source().follow_local_writer(local))).await;
    let client = reqwest::Client::new();
    let head_at = async || {
        let head = client
            .get(format!("{base}/ipni/v1/ad/head"))
            .send()
            .await
            .unwrap();
        SignedHead::from_dag_json(&head.bytes().await.unwrap())
            .unwrap()
            .head
    };
    let publisher = world.publisher(16_384, 10);
    commit_car(&world.index, 1, 3).await;
    let first = publisher.publish_pending().await.unwrap().unwrap().head;
    heads.send_replace(Some(first));
    assert_eq!(head_at().await, first);

    commit_car(&world.index, 2, 3).await;
    let second = publisher.publish_pending().await.unwrap().unwrap().head;
    assert_ne!(first, second);
    heads.send_replace(Some(second));
    assert_eq!(
        head_at().await,
        second,
        "served within HEAD_TTL of the first read"
    );
}
