//! IPNI publishing by three replicas sharing one identity, one S3 bucket and one PostgreSQL
//! database: while all three ingest CARs at once, one of them (the advisory lock's holder)
//! extends the chain; the chain, walked from the head as an indexer walks it, holds every CAR
//! exactly once with every link present and every signature valid, and every replica serves
//! the same head.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cid::Cid;
use common::Backends;
use hydrant_ipni::{Advertisement, EntryChunk, SignedHead, dag_json_cid};
use sha2::{Digest as _, Sha256};

async fn get(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// The signed head a replica serves, verified; `None` before the first advertisement.
async fn head(client: &reqwest::Client, gateway: &str, peer: &str) -> Option<Cid> {
    let (status, body) = get(client, &format!("{gateway}/ipni/v1/ad/head")).await;
    if status == 204 {
        return None;
    }
    assert_eq!(status, 200);
    let head = SignedHead::from_dag_json(&body).unwrap();
    assert_eq!(head.verify().unwrap().to_string(), peer);
    Some(head.head)
}

/// Walks the chain from `head` through `gateway`: context ID -> (is_rm, multihashes), in
/// chain order, checking every CID, link and signature.
async fn walk(
    client: &reqwest::Client,
    gateway: &str,
    head: Cid,
    peer: &str,
) -> Vec<(Vec<u8>, bool, BTreeSet<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut next = Some(head);
    while let Some(cid) = next {
        let (status, bytes) = get(client, &format!("{gateway}/ipni/v1/ad/{cid}")).await;
        assert_eq!(status, 200, "advertisement {cid} is served");
        assert_eq!(dag_json_cid(&bytes), cid);
        let ad = Advertisement::from_dag_json(&bytes).unwrap();
        assert_eq!(ad.verify().unwrap().to_string(), peer);
        let mut entries = BTreeSet::new();
        let mut link = (ad.entries != hydrant_ipni::no_entries()).then_some(ad.entries);
        while let Some(c) = link {
            let (status, bytes) = get(client, &format!("{gateway}/ipni/v1/ad/{c}")).await;
            assert_eq!(status, 200, "entry chunk {c} is served");
            assert_eq!(dag_json_cid(&bytes), c);
            let chunk = EntryChunk::from_dag_json(&bytes).unwrap();
            entries.extend(chunk.entries.iter().map(|m| m.to_bytes()));
            link = chunk.next;
        }
        out.push((ad.context_id.clone(), ad.is_rm, entries));
        next = ad.previous;
    }
    out.reverse();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_ingesting_at_once_publish_one_chain() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = "[ipni]\nenabled = true\npoll_interval_ms = 200\n";
    let replicas = common::start_replicas(dir.path(), &backends, 3, extra);
    let peer = replicas[0].info.peer_id.clone();

    // Nine different CARs (CAR n holds blocks 0..=n of one file), three per replica, all
    // ingested at once.
    let cars: Vec<(Vec<Cid>, Vec<u8>)> = (1..=9).map(|n| common::raw_file_car(n, 512)).collect();
    let ingests = cars
        .iter()
        .enumerate()
        .map(|(i, (_, car))| replicas[i % 3].ingest(car));
    let answers = futures::future::join_all(ingests).await;
    let expected: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = answers
        .iter()
        .zip(&cars)
        .map(|(answer, (cids, _))| {
            let key = answer["car_key"].as_str().expect("car_key").to_owned();
            (
                Sha256::digest(key.as_bytes()).to_vec(),
                cids.iter().map(|c| c.hash().to_bytes()).collect(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 9);

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let chain = loop {
        if let Some(h) = head(&client, &replicas[0].info.gateway_url, &peer).await {
            let chain = walk(&client, &replicas[0].info.gateway_url, h, &peer).await;
            if chain.len() >= 9 {
                break chain;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the chain did not cover the nine CARs"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(chain.len(), 9, "every CAR exactly once, nothing else");
    let mut seen = BTreeMap::new();
    for (context, is_rm, entries) in chain {
        assert!(!is_rm);
        assert!(
            seen.insert(context, entries).is_none(),
            "a CAR advertised twice"
        );
    }
    assert_eq!(seen, expected);

    // Every replica serves the same head (each re-reads it at most once a second).
    let first = head(&client, &replicas[0].info.gateway_url, &peer).await;
    for replica in &replicas[1..] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let theirs = head(&client, &replica.info.gateway_url, &peer).await;
            if theirs == first {
                break;
            }
            assert!(Instant::now() < deadline, "{theirs:?} != {first:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // One writer: the other replicas published nothing.
    let mut writers = 0;
    for replica in &replicas {
        if common::metric(
            &replica.metrics().await,
            "hydrant_ipni_advertisements_total",
        ) > 0.0
        {
            writers += 1;
        }
    }
    assert_eq!(writers, 1, "exactly one replica published");
}
