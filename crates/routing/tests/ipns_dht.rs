//! The IPNS API (GET/PUT `/routing/v1/ipns/{name}`) and DHT closest peers
//! (`/routing/v1/dht/closest/peers/{key}`) over a real socket. IPNS records are real, signed
//! records kept in a real `hydrant_records::RecordStore`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cid::Cid;
use hydrant_records::{IpnsEntry, IpnsRecord, PutOutcome, RecordStore, ValidRecord, sign_ipns};
use hydrant_routing::{
    ContentRouter, MEDIA_IPNS_RECORD, PeerRecord, Record, RouterError, RoutingConfig,
    peer_id_to_cid, router,
};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::Value;

mod common;
use common::{header, key, peer, serve_app};

/// IPNS from a `RecordStore`; closest peers from a fixed list (and the keys asked for).
#[derive(Default)]
struct DhtRouter {
    records: RecordStore,
    closest: Vec<Record>,
    keys: Mutex<Vec<Vec<u8>>>,
}

#[async_trait]
impl ContentRouter for DhtRouter {
    async fn find_providers(&self, _: &Cid, _: usize) -> Result<Vec<Record>, RouterError> {
        Ok(Vec::new())
    }
    async fn find_peers(&self, _: &PeerId, _: usize) -> Result<Vec<Record>, RouterError> {
        Ok(Vec::new())
    }
    async fn closest_peers(&self, key: &[u8], limit: usize) -> Result<Vec<Record>, RouterError> {
        self.keys.lock().unwrap().push(key.to_vec());
        Ok(self.closest.iter().take(limit).cloned().collect())
    }
    async fn get_ipns(&self, name: &PeerId) -> Result<Option<IpnsRecord>, RouterError> {
        let key = [&b"/ipns/"[..], &name.to_bytes()].concat();
        Ok(match self.records.get_record(&key, SystemTime::now()) {
            Some(ValidRecord::Ipns(r)) => Some(r),
            _ => None,
        })
    }
    async fn put_ipns(&self, record: IpnsRecord) -> Result<PutOutcome, RouterError> {
        self.records
            .put_valid(ValidRecord::Ipns(record), SystemTime::now())
            .map_err(|e| RouterError::Internal(e.to_string()))
    }
}

/// Implements only the two required lookups.
struct Bare;

#[async_trait]
impl ContentRouter for Bare {
    async fn find_providers(&self, _: &Cid, _: usize) -> Result<Vec<Record>, RouterError> {
        Ok(Vec::new())
    }
    async fn find_peers(&self, _: &PeerId, _: usize) -> Result<Vec<Record>, RouterError> {
        Ok(Vec::new())
    }
}

async fn serve(r: impl ContentRouter) -> String {
    serve_app(router(Arc::new(r), RoutingConfig::default())).await
}

/// A record for `key` pointing at `/ipfs/bafkqaaa`, valid for an hour, TTL 42 s.
fn record(key: &Keypair, sequence: u64) -> Vec<u8> {
    let eol = SystemTime::now() + Duration::from_secs(3600);
    sign_ipns(
        key,
        b"/ipfs/bafkqaaa",
        sequence,
        eol,
        Duration::from_secs(42),
    )
    .unwrap()
}

fn ipns_url(base: &str, name: &PeerId) -> String {
    format!("{base}/routing/v1/ipns/{}", peer_id_to_cid(name))
}

async fn put(url: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .header("Content-Type", MEDIA_IPNS_RECORD)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("Accept", MEDIA_IPNS_RECORD)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ipns_put_then_get_with_the_spec_headers() {
    let base = serve(DhtRouter::default()).await;
    let k = key(1);
    let url = ipns_url(&base, &peer(1));

    let resp = get(&url).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "nothing stored yet");

    let raw = record(&k, 1);
    let resp = put(&url, raw.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);

    let resp = get(&url).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), MEDIA_IPNS_RECORD);
    assert_eq!(header(&resp, "vary"), "Accept");
    let etag = header(&resp, "etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "{etag}"
    );
    // max-age is the record's TTL; the stale windows its remaining validity (about 1 h).
    let cache = header(&resp, "cache-control").to_string();
    let left: u64 = cache
        .rsplit("stale-if-error=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&left), "{cache}");
    assert_eq!(
        cache,
        format!("public, max-age=42, stale-while-revalidate={left}, stale-if-error={left}")
    );
    let expires = httpdate::parse_http_date(header(&resp, "expires")).unwrap();
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    assert!(in_an_hour.duration_since(expires).unwrap() < Duration::from_secs(10));
    httpdate::parse_http_date(header(&resp, "last-modified")).unwrap();
    assert_eq!(resp.bytes().await.unwrap().to_vec(), raw);

    // The base58 name form reads the same record; the Etag names these bytes.
    let resp = get(&format!("{base}/routing/v1/ipns/{}", peer(1))).await;
    assert_eq!(header(&resp, "etag"), etag);

    // Without Accept naming the record type: 406, saying what to send.
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_ACCEPTABLE);
    assert!(resp.text().await.unwrap().contains(MEDIA_IPNS_RECORD));

    // Another name: 404.
    assert_eq!(
        get(&ipns_url(&base, &peer(2))).await.status(),
        StatusCode::NOT_FOUND
    );
    // Not a peer ID: 400.
    let resp = get(&format!("{base}/routing/v1/ipns/bafkqaaa")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ipns_put_refuses_bad_signatures_names_and_older_records() {
    let base = serve(DhtRouter::default()).await;
    let k = key(1);
    let url = ipns_url(&base, &peer(1));

    // Invalid signature: signatureV2 of another record of the same key.
    let mut entry = IpnsEntry::decode(&record(&k, 3)[..]).unwrap();
    let other = IpnsEntry::decode(&record(&k, 4)[..]).unwrap();
    entry.signature_v2 = other.signature_v2;
    let resp = put(&url, entry.encode_to_vec()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("signature"));

    // A valid record of another key, PUT under this name.
    let resp = put(&url, record(&key(2), 3)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Expired.
    let expired = sign_ipns(
        &k,
        b"/ipfs/bafkqaaa",
        9,
        SystemTime::now() - Duration::from_secs(1),
        Duration::ZERO,
    )
    .unwrap();
    let resp = put(&url, expired).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("expired"));

    // Sequence 5 is stored; 4 is refused and 5 kept; the same bytes again are fine.
    let five = record(&k, 5);
    assert_eq!(put(&url, five.clone()).await.status(), StatusCode::OK);
    let resp = put(&url, record(&k, 4)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("higher sequence"));
    assert_eq!(put(&url, five.clone()).await.status(), StatusCode::OK);
    assert_eq!(get(&url).await.bytes().await.unwrap().to_vec(), five);
    let six = record(&k, 6);
    assert_eq!(put(&url, six.clone()).await.status(), StatusCode::OK);
    assert_eq!(get(&url).await.bytes().await.unwrap().to_vec(), six);
}

#[tokio::test]
async fn ipns_put_bounds_the_body_and_wants_the_media_type() {
    let base = serve(DhtRouter::default()).await;
    let url = ipns_url(&base, &peer(1));

    let resp = put(&url, vec![0; 10 * 1024 + 1]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("10240 bytes"));
    // A body well past the bound (small enough for the socket buffers, so the client gets to
    // read the answer) is refused the same way.
    let resp = put(&url, vec![0; 64 * 1024]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = reqwest::Client::new()
        .put(&url)
        .header("Content-Type", "application/octet-stream")
        .body(record(&key(1), 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_ACCEPTABLE);
    assert!(resp.text().await.unwrap().contains(MEDIA_IPNS_RECORD));
    assert_eq!(get(&url).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ipns_without_router_support_is_501() {
    let base = serve(Bare).await;
    let url = ipns_url(&base, &peer(1));
    assert_eq!(get(&url).await.status(), StatusCode::NOT_IMPLEMENTED);
    let resp = put(&url, record(&key(1), 1)).await;
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
}

fn peer_rec(seed: u8) -> Record {
    Record::Peer(PeerRecord::new(
        peer(seed),
        vec![format!("/ip4/192.0.2.{seed}/tcp/4001").parse().unwrap()],
        Vec::new(),
    ))
}

#[tokio::test]
async fn closest_peers_json_and_ndjson_in_router_order() {
    let r = Arc::new(DhtRouter {
        closest: (1..=30).map(peer_rec).collect(),
        ..DhtRouter::default()
    });
    let base = serve_app(router(r.clone(), RoutingConfig::default())).await;
    let target = peer(99);
    let url = format!("{base}/routing/v1/dht/closest/peers/{target}");

    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert!(header(&resp, "cache-control").contains("max-age=300"));
    let body: Value = resp.json().await.unwrap();
    let peers = body["Peers"].as_array().unwrap();
    assert_eq!(peers.len(), 20, "limited to the DHT's k");
    assert_eq!(peers[0]["ID"], peer(1).to_base58());
    assert_eq!(peers[0]["Schema"], "peer");
    assert_eq!(peers[0]["Addrs"][0], "/ip4/192.0.2.1/tcp/4001");
    assert_eq!(peers[19]["ID"], peer(20).to_base58());

    let resp = reqwest::Client::new()
        .get(&url)
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "content-type"), "application/x-ndjson");
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 20);

    // The key handed to the router is the multihash, whatever the form of the path.
    let c = Cid::new_v1(
        0x55,
        cid::multihash::Multihash::wrap(0x12, &[7; 32]).unwrap(),
    );
    let resp = reqwest::get(format!("{base}/routing/v1/dht/closest/peers/{c}"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let libp2p_key = peer_id_to_cid(&target);
    reqwest::get(format!("{base}/routing/v1/dht/closest/peers/{libp2p_key}"))
        .await
        .unwrap();
    let keys = r.keys.lock().unwrap().clone();
    assert_eq!(
        keys,
        vec![
            target.to_bytes(),
            target.to_bytes(),
            c.hash().to_bytes(),
            target.to_bytes()
        ]
    );

    // A key that is neither: 422.
    let resp = reqwest::get(format!("{base}/routing/v1/dht/closest/peers/nope"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn closest_peers_none_found_is_404_and_unsupported_501() {
    let base = serve(DhtRouter::default()).await;
    let resp = reqwest::get(format!("{base}/routing/v1/dht/closest/peers/{}", peer(1)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let base = serve(Bare).await;
    let resp = reqwest::get(format!("{base}/routing/v1/dht/closest/peers/{}", peer(1)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
}
