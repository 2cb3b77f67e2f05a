//! End-to-end tests of the Delegated Routing V1 server (and client) over a real socket,
//! with an in-memory `ContentRouter`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::routing::get as axum_get;
use cid::Cid;
use cid::multibase::Base;
use hydrant_routing::{
    ClientConfig, ClientError, ContentRouter, PeerRecord, Record, RouterError, RoutingClient,
    RoutingConfig, peer_id_to_cid, router,
};
use libp2p::{Multiaddr, PeerId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};

mod common;
use common::{header, peer, serve_app};

/// Signals the first lookup's arrival, then holds every lookup until permits are added.
type Gate = (Mutex<Option<oneshot::Sender<()>>>, Arc<Semaphore>);

/// Records in HashMaps; records every `limit` asked for; optional failure or blocking.
#[derive(Default)]
struct MemRouter {
    providers: HashMap<Cid, Vec<Record>>,
    peers: HashMap<PeerId, Vec<Record>>,
    /// Ignore `limit` (a misbehaving router: the server must still bound the answer).
    ignore_limit: bool,
    fail_with: Option<RouterError>,
    /// When set, a lookup signals `entered` (first lookup only) and then waits for a
    /// permit of the semaphore (none until the test adds some).
    block: Option<Gate>,
    limits: Mutex<Vec<usize>>,
}

impl MemRouter {
    async fn answer(
        &self,
        found: Option<&Vec<Record>>,
        limit: usize,
    ) -> Result<Vec<Record>, RouterError> {
        self.limits.lock().unwrap().push(limit);
        if let Some((entered, release)) = &self.block {
            if let Some(tx) = entered.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let _permit = release.acquire().await.unwrap();
        }
        if let Some(e) = &self.fail_with {
            return Err(e.clone());
        }
        let all = found.cloned().unwrap_or_default();
        let n = if self.ignore_limit { all.len() } else { limit };
        Ok(all.into_iter().take(n).collect())
    }
}

#[async_trait]
impl ContentRouter for MemRouter {
    async fn find_providers(&self, cid: &Cid, limit: usize) -> Result<Vec<Record>, RouterError> {
        self.answer(self.providers.get(cid), limit).await
    }
    async fn find_peers(&self, peer: &PeerId, limit: usize) -> Result<Vec<Record>, RouterError> {
        self.answer(self.peers.get(peer), limit).await
    }
}

fn cid(n: u8) -> Cid {
    Cid::new_v1(
        0x55,
        cid::multihash::Multihash::wrap(0x12, &[n; 32]).unwrap(),
    )
}

fn ma(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn peer_rec(seed: u8, addrs: &[&str], protos: &[&str]) -> Record {
    Record::Peer(PeerRecord::new(
        peer(seed),
        addrs.iter().map(|a| ma(a)).collect(),
        protos.iter().map(|p| p.to_string()).collect(),
    ))
}

const TCP4: &str = "/ip4/192.0.2.1/tcp/4001";
const QUIC6: &str = "/ip6/2001:db8::1/udp/4001/quic-v1";
const WT: &str = "/ip4/192.0.2.1/udp/4001/quic-v1/webtransport";

/// A router with: cid(1) -> three providers, cid(2) -> 150 providers, peer(1) -> one record.
fn sample_router() -> MemRouter {
    let mut r = MemRouter::default();
    r.providers.insert(
        cid(1),
        vec![
            peer_rec(1, &[TCP4, QUIC6], &["transport-bitswap"]),
            peer_rec(2, &[WT], &["transport-ipfs-gateway-http"]),
            peer_rec(3, &[], &[]),
        ],
    );
    r.providers.insert(
        cid(2),
        (0..150u8)
            .map(|i| peer_rec(i, &[TCP4], &["transport-bitswap"]))
            .collect(),
    );
    r.peers
        .insert(peer(1), vec![peer_rec(1, &[TCP4], &["transport-bitswap"])]);
    r
}

async fn serve(r: MemRouter, config: RoutingConfig) -> (String, Arc<MemRouter>) {
    let r = Arc::new(r);
    let base = serve_app(router(r.clone(), config)).await;
    (base, r)
}

async fn fetch(url: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    req.send().await.unwrap()
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|r| r["ID"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn providers_json_has_spec_shape_and_headers() {
    let (base, r) = serve(sample_router(), RoutingConfig::default()).await;
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("text/html"),
    ] {
        let resp = fetch(&format!("{base}/routing/v1/providers/{}", cid(1)), accept).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-type"), "application/json");
        assert_eq!(header(&resp, "vary"), "Accept");
        assert_eq!(
            header(&resp, "cache-control"),
            "public, max-age=300, stale-while-revalidate=172800, stale-if-error=172800"
        );
        httpdate::parse_http_date(header(&resp, "last-modified")).unwrap();
        assert_eq!(header(&resp, "access-control-allow-origin"), "*");
        assert_eq!(
            header(&resp, "access-control-allow-methods"),
            "GET, OPTIONS"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["Providers"][0],
            json!({
                "Schema": "peer",
                "ID": peer(1).to_base58(),
                "Addrs": [TCP4, QUIC6],
                "Protocols": ["transport-bitswap"],
            })
        );
        // Unknown addrs/protocols are omitted, not written as empty lists.
        assert_eq!(
            body["Providers"][2],
            json!({"Schema": "peer", "ID": peer(3).to_base58()})
        );
        assert_eq!(body["Providers"].as_array().unwrap().len(), 3);
    }
    assert!(r.limits.lock().unwrap().iter().all(|&l| l == 100));
}

#[tokio::test]
async fn cid_in_any_multibase_and_v0() {
    let mut m = MemRouter::default();
    let v0 = Cid::new_v0(cid::multihash::Multihash::wrap(0x12, &[5; 32]).unwrap()).unwrap();
    m.providers.insert(v0, vec![peer_rec(9, &[TCP4], &[])]);
    m.providers.insert(cid(1), vec![peer_rec(8, &[TCP4], &[])]);
    let (base, _) = serve(m, RoutingConfig::default()).await;
    for (c, want) in [
        (v0.to_string(), peer(9)),
        (
            cid(1).to_string_of_base(Base::Base36Lower).unwrap(),
            peer(8),
        ),
        (cid(1).to_string_of_base(Base::Base58Btc).unwrap(), peer(8)),
    ] {
        let body: Value = fetch(&format!("{base}/routing/v1/providers/{c}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            ids(body["Providers"].as_array().unwrap()),
            vec![want.to_base58()],
            "{c}"
        );
    }
}

#[tokio::test]
async fn no_results_is_200_with_empty_list_and_short_max_age() {
    let (base, _) = serve(sample_router(), RoutingConfig::default()).await;
    let resp = fetch(&format!("{base}/routing/v1/providers/{}", cid(99)), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=15, stale-while-revalidate=172800, stale-if-error=172800"
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"Providers": []})
    );

    let resp = fetch(
        &format!("{base}/routing/v1/peers/{}", peer(77)),
        Some("application/x-ndjson"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/x-ndjson");
    assert!(header(&resp, "cache-control").contains("max-age=15,"));
    assert_eq!(resp.text().await.unwrap(), "");
}

#[tokio::test]
async fn ndjson_one_record_per_line_only_when_asked() {
    let (base, r) = serve(sample_router(), RoutingConfig::default()).await;
    let url = format!("{base}/routing/v1/providers/{}", cid(2));
    let resp = fetch(&url, Some("application/x-ndjson, application/json")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/x-ndjson");
    assert_eq!(header(&resp, "vary"), "Accept");
    let text = resp.text().await.unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 150 records: more than the JSON bound, all of them streamed.
    assert_eq!(lines.len(), 150);
    let expected: Vec<String> = (0..150u8).map(|i| peer(i).to_base58()).collect();
    assert_eq!(ids(&lines), expected);
    assert!(lines.iter().all(|l| l["Schema"] == "peer"));
    assert_eq!(r.limits.lock().unwrap().last(), Some(&1000));

    // The same request preferring JSON by q-value is JSON, bounded at 100.
    let resp = fetch(&url, Some("application/x-ndjson;q=0.5, application/json")).await;
    assert_eq!(header(&resp, "content-type"), "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        ids(body["Providers"].as_array().unwrap()),
        expected[..100].to_vec()
    );
}

#[tokio::test]
async fn results_are_bounded_even_if_the_router_ignores_limit() {
    let mut m = sample_router();
    m.ignore_limit = true;
    let config = RoutingConfig {
        max_json_records: 7,
        max_ndjson_records: 20,
        ..RoutingConfig::default()
    };
    let (base, _) = serve(m, config).await;
    let url = format!("{base}/routing/v1/providers/{}", cid(2));
    let body: Value = fetch(&url, None).await.json().await.unwrap();
    assert_eq!(body["Providers"].as_array().unwrap().len(), 7);
    let text = fetch(&url, Some("application/x-ndjson"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 20);
}

#[tokio::test]
async fn peers_accepts_base58_and_libp2p_key_cids() {
    let (base, _) = serve(sample_router(), RoutingConfig::default()).await;
    let c = peer_id_to_cid(&peer(1));
    for form in [
        peer(1).to_base58(),
        c.to_string(),
        c.to_string_of_base(Base::Base36Lower).unwrap(),
    ] {
        let resp = fetch(&format!("{base}/routing/v1/peers/{form}"), None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{form}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            ids(body["Peers"].as_array().unwrap()),
            vec![peer(1).to_base58()]
        );
        assert_eq!(body["Peers"][0]["Protocols"], json!(["transport-bitswap"]));
    }
}

#[tokio::test]
async fn bad_identifiers_are_422_with_a_reason() {
    let (base, r) = serve(sample_router(), RoutingConfig::default()).await;
    let raw_cid = cid(1); // a CID, but not libp2p-key
    for (path, needle) in [
        ("/routing/v1/providers/not-a-cid".to_string(), "invalid CID"),
        (format!("/routing/v1/peers/{raw_cid}"), "libp2p-key (0x72)"),
        (
            "/routing/v1/peers/12D3KooW0OIl".to_string(),
            "invalid peer ID",
        ),
        (
            format!("/routing/v1/providers/b{}", "a".repeat(2000)),
            "limit is 1024",
        ),
    ] {
        let resp = fetch(&format!("{base}{path}"), None).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(header(&resp, "access-control-allow-origin"), "*");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{path}: {text}");
    }
    assert!(
        r.limits.lock().unwrap().is_empty(),
        "no lookup for a bad request"
    );
}

#[tokio::test]
async fn filters_over_http() {
    let (base, _) = serve(sample_router(), RoutingConfig::default()).await;
    let url = |q: &str| format!("{base}/routing/v1/providers/{}?{q}", cid(1));
    let json_of = |u: String| async move { fetch(&u, None).await.json::<Value>().await.unwrap() };

    // Negative filters, percent-encoded `!` and `,`: peer 1 keeps its TCP address, peer 2
    // (only a QUIC address) and peer 3 (no addresses) are omitted.
    let body = json_of(url("filter-addrs=%21ip6%2C%21quic-v1")).await;
    assert_eq!(
        ids(body["Providers"].as_array().unwrap()),
        vec![peer(1).to_base58()]
    );
    assert_eq!(body["Providers"][0]["Addrs"], json!([TCP4]));

    // `unknown` keeps peer 3; webtransport keeps peer 2.
    let body = json_of(url("filter-addrs=webtransport,unknown")).await;
    assert_eq!(
        ids(body["Providers"].as_array().unwrap()),
        vec![peer(2).to_base58(), peer(3).to_base58()]
    );

    // Protocol filter: records come back unchanged.
    let body = json_of(url("filter-protocols=Transport-Bitswap")).await;
    assert_eq!(
        body["Providers"],
        json!([{"Schema":"peer","ID":peer(1).to_base58(),"Addrs":[TCP4,QUIC6],"Protocols":["transport-bitswap"]}])
    );
    let body = json_of(url("filter-protocols=unknown")).await;
    assert_eq!(
        ids(body["Providers"].as_array().unwrap()),
        vec![peer(3).to_base58()]
    );

    // Both, and repeated parameters joined.
    let body = json_of(url("filter-protocols=transport-bitswap&filter-protocols=transport-ipfs-gateway-http&filter-addrs=udp")).await;
    assert_eq!(
        ids(body["Providers"].as_array().unwrap()),
        vec![peer(1).to_base58(), peer(2).to_base58()]
    );
    assert_eq!(body["Providers"][0]["Addrs"], json!([QUIC6]));

    // Filtered down to nothing: 200, empty, short max-age.
    let resp = fetch(
        &url("filter-protocols=transport-graphsync-filecoinv1"),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "cache-control").contains("max-age=15,"));

    // Bounds: a protocol name over 63 bytes is 422.
    let resp = fetch(&url(&format!("filter-protocols={}", "p".repeat(64))), None).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.unwrap().contains("limit is 63"));
}

#[tokio::test]
async fn methods_paths_head_and_cors() {
    let (base, _) = serve(sample_router(), RoutingConfig::default()).await;
    let c = reqwest::Client::new();
    let prov = format!("{base}/routing/v1/providers/{}", cid(1));

    for m in [
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let resp = c.request(m.clone(), &prov).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED, "{m}");
    }
    let resp = c.head(&prov).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(resp.bytes().await.unwrap().len(), 0);

    let resp = c
        .request(reqwest::Method::OPTIONS, &prov)
        .header("Origin", "https://example.org")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "access-control-allow-origin"), "*");
    assert_eq!(
        header(&resp, "access-control-allow-methods"),
        "GET, OPTIONS"
    );

    for (path, status) in [
        // No Accept naming the IPNS record type (tests/ipns_dht.rs has the rest).
        (
            format!("/routing/v1/ipns/{}", peer_id_to_cid(&peer(1))),
            StatusCode::NOT_ACCEPTABLE,
        ),
        // A router without DHT support.
        (
            format!("/routing/v1/dht/closest/peers/{}", peer(1)),
            StatusCode::NOT_IMPLEMENTED,
        ),
        ("/routing/v1/unknown".to_string(), StatusCode::BAD_REQUEST),
        (
            "/routing/v1/providers/".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/routing/v1/providers/{}/extra", cid(1)),
            StatusCode::BAD_REQUEST,
        ),
        ("/routing/v1".to_string(), StatusCode::BAD_REQUEST),
    ] {
        let resp = fetch(&format!("{base}{path}"), None).await;
        assert_eq!(resp.status(), status, "{path}");
        assert!(
            !resp.text().await.unwrap().is_empty(),
            "{path}: body explains"
        );
    }
    let resp = c
        .put(format!("{base}/routing/v1/ipns/{}", peer(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn router_errors_map_to_statuses() {
    for (err, status) in [
        (
            RouterError::Overloaded {
                retry_after: Duration::from_millis(2500),
            },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (RouterError::Timeout, StatusCode::GATEWAY_TIMEOUT),
        (
            RouterError::Internal("secret /var/db path".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ] {
        let m = MemRouter {
            fail_with: Some(err.clone()),
            ..sample_router()
        };
        let (base, _) = serve(m, RoutingConfig::default()).await;
        let resp = fetch(&format!("{base}/routing/v1/providers/{}", cid(1)), None).await;
        assert_eq!(resp.status(), status, "{err:?}");
        assert_eq!(header(&resp, "cache-control"), "no-store");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(header(&resp, "retry-after"), "3");
        } else {
            assert!(resp.headers().get("retry-after").is_none());
        }
        let text = resp.text().await.unwrap();
        assert!(!text.contains("secret"), "internal detail leaked: {text}");
    }
}

#[tokio::test]
async fn slow_lookup_is_504() {
    let m = MemRouter {
        block: Some((Mutex::new(None), Arc::new(Semaphore::new(0)))),
        ..sample_router()
    };
    let config = RoutingConfig {
        lookup_timeout: Duration::from_millis(50),
        ..RoutingConfig::default()
    };
    let (base, _) = serve(m, config).await;
    let resp = fetch(&format!("{base}/routing/v1/peers/{}", peer(1)), None).await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn concurrent_lookups_are_bounded() {
    let (tx, rx) = oneshot::channel();
    let release = Arc::new(Semaphore::new(0));
    let m = MemRouter {
        block: Some((Mutex::new(Some(tx)), release.clone())),
        ..sample_router()
    };
    let config = RoutingConfig {
        max_concurrent_lookups: 1,
        ..RoutingConfig::default()
    };
    let (base, _) = serve(m, config).await;
    let url = format!("{base}/routing/v1/providers/{}", cid(1));
    let first = tokio::spawn({
        let url = url.clone();
        async move { fetch(&url, None).await.status() }
    });
    rx.await.unwrap(); // the first lookup holds the only slot
    let resp = fetch(&url, None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&resp, "retry-after"), "5");
    release.add_permits(Semaphore::MAX_PERMITS);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    // The slot is free again once the first lookup is done.
    assert_eq!(fetch(&url, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn merges_into_a_router_with_its_own_fallback() {
    let outer = axum::Router::new()
        .route("/ipfs/{*p}", axum_get(|| async { "gateway" }))
        .fallback(|| async { (StatusCode::IM_A_TEAPOT, "outer fallback") });
    let app = outer.merge(router(Arc::new(sample_router()), RoutingConfig::default()));
    let base = serve_app(app).await;
    assert_eq!(
        fetch(&format!("{base}/ipfs/x"), None)
            .await
            .text()
            .await
            .unwrap(),
        "gateway"
    );
    assert_eq!(
        fetch(&format!("{base}/elsewhere"), None).await.status(),
        StatusCode::IM_A_TEAPOT
    );
    let resp = fetch(&format!("{base}/routing/v1/providers/{}", cid(1)), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_schemas_and_extra_fields_pass_through() {
    let legacy = json!({"Schema": "bitswap", "Protocol": "transport-bitswap", "ID": peer(4).to_base58(), "Addrs": [TCP4]});
    let mut extra = PeerRecord::new(peer(5), vec![ma(TCP4)], vec!["transport-bitswap".into()]);
    extra
        .extra
        .insert("transport-bitswap".into(), json!({"foo": "bar"}));
    let mut m = MemRouter::default();
    m.providers.insert(
        cid(1),
        vec![
            Record::from_json(legacy.clone()).unwrap(),
            Record::Peer(extra),
        ],
    );
    let (base, _) = serve(m, RoutingConfig::default()).await;
    let body: Value = fetch(
        &format!(
            "{base}/routing/v1/providers/{}?filter-addrs=quic-v1",
            cid(1)
        ),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    // The filter drops the peer record (no QUIC address); the legacy record is outside its
    // scope and passes unchanged.
    assert_eq!(body["Providers"], json!([legacy]));
    let body: Value = fetch(&format!("{base}/routing/v1/providers/{}", cid(1)), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["Providers"][1]["transport-bitswap"],
        json!({"foo": "bar"})
    );
}

#[tokio::test]
async fn client_reads_ndjson_from_own_server() {
    let (base, _) = serve(sample_router(), RoutingConfig::default()).await;
    let client = RoutingClient::new(&format!("{base}/"), ClientConfig::default()).unwrap();
    let got = client.find_providers(&cid(2), 1000).await.unwrap();
    // 150 > the server's JSON bound of 100: the records came over NDJSON.
    assert_eq!(got.len(), 150);
    assert_eq!(got, sample_router().providers[&cid(2)]);
    assert_eq!(client.find_providers(&cid(2), 10).await.unwrap().len(), 10);
    let bounded = RoutingClient::new(
        &base,
        ClientConfig {
            max_records: 3,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        bounded.find_providers(&cid(2), 1000).await.unwrap().len(),
        3
    );
    assert!(
        client
            .find_providers(&cid(42), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        client.find_peers(&peer(1), 10).await.unwrap(),
        sample_router().peers[&peer(1)]
    );
}

#[tokio::test]
async fn client_falls_back_to_json_and_reads_404_as_empty() {
    // A legacy server that always answers JSON (with `null` for no results).
    let rec = peer_rec(6, &[TCP4], &["transport-bitswap"]);
    let body =
        json!({"Providers": [rec.to_json(), {"Schema": "peer", "ID": "garbage"}]}).to_string();
    let app = axum::Router::new()
        .route(
            "/routing/v1/providers/{cid}",
            axum_get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        )
        .route(
            "/routing/v1/peers/{p}",
            axum_get(|| async { StatusCode::NOT_FOUND }),
        );
    let base = serve_app(app).await;
    let client = RoutingClient::new(&base, ClientConfig::default()).unwrap();
    assert_eq!(client.find_providers(&cid(1), 10).await.unwrap(), vec![rec]);
    assert!(client.find_peers(&peer(1), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn client_maps_errors_and_bounds_bodies() {
    let m = MemRouter {
        fail_with: Some(RouterError::Overloaded {
            retry_after: Duration::from_secs(7),
        }),
        ..sample_router()
    };
    let (base, _) = serve(m, RoutingConfig::default()).await;
    let client = RoutingClient::new(&base, ClientConfig::default()).unwrap();
    let err = client.find_providers(&cid(1), 10).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Busy { status: 503, retry_after: Some(d) } if d == Duration::from_secs(7))
    );
    let as_router: &dyn ContentRouter = &client;
    assert_eq!(
        as_router.find_providers(&cid(1), 10).await,
        Err(RouterError::Overloaded {
            retry_after: Duration::from_secs(7)
        })
    );

    // An NDJSON line over the bound is refused.
    let (base, _) = serve(sample_router(), RoutingConfig::default()).await;
    let small = RoutingClient::new(
        &base,
        ClientConfig {
            max_line_bytes: 16,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    assert!(matches!(
        small.find_providers(&cid(1), 10).await,
        Err(ClientError::TooLarge(16))
    ));
}

#[tokio::test]
async fn ipns_route_can_be_left_to_another_router() {
    let config = RoutingConfig {
        ipns_route: false,
        ..RoutingConfig::default()
    };
    let ipns = axum::Router::new().route("/routing/v1/ipns/{name}", axum_get(|| async { "ipns" }));
    let app = ipns.merge(router(Arc::new(sample_router()), config));
    let base = serve_app(app).await;
    let resp = fetch(&format!("{base}/routing/v1/ipns/{}", cid(1)), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "ipns");
    // The catch-all still answers other unknown paths.
    let resp = fetch(&format!("{base}/routing/v1/nope"), None).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
