//! One rule for truncated digests on every path (`hydrant_blocks::verify`, boxo's `verifcid`
//! rule): a block whose CID carries a sha2-256 digest cut to 16 bytes is refused at ingest with
//! an error that names it; one cut to 20 bytes is ingested and served, with `read.verify` on
//! (set in the test's config; local storage does not re-hash by default), by the gateway (raw block and CAR) and by Bitswap (the client rebuilds the CID
//! from the Bitswap 1.1.0 prefix and data).

mod common;

use std::path::Path;
use std::time::Duration;

use cid::Cid;
use common::{BitswapClient, Ports, Replica};
use hydrant_bitswap::WantType;
use multihash_codetable::{Code, MultihashDigest};

/// A raw block under a sha2-256 CID whose digest is cut to `len` bytes.
fn truncated(data: &[u8], len: usize) -> Cid {
    let full = Code::Sha2_256.digest(data);
    let digest = &full.digest()[..len];
    Cid::new_v1(0x55, multihash::Multihash::wrap(0x12, digest).unwrap())
}

/// A CARv1 with `cid` as its root and its one block `data`.
fn car_of(cid: Cid, data: &[u8]) -> Vec<u8> {
    let mut car = hydrant_car::encode_v1_header(&[cid]);
    hydrant_car::encode_section(&cid, data, &mut car);
    car
}

fn start_daemon(dir: &Path) -> Replica {
    common::run_json(
        std::process::Command::new(common::HYDRANT)
            .arg("--repo")
            .arg(dir)
            .args(["init", "--json"]),
    );
    std::fs::write(
        dir.join("config.toml"),
        "[dht]\nenabled = false\n[read]\nverify = true\n",
    )
    .unwrap();
    Replica::start(dir, Ports::free())
}

#[tokio::test]
async fn truncated_digests_are_refused_or_served_alike_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path());
    let http = reqwest::Client::new();
    let api = &daemon.info.api_url;
    let gateway = &daemon.info.gateway_url;

    // 16 bytes: below the minimum, refused at ingest with a message naming the rule.
    let short_data = b"a block under a 16-byte digest";
    let short = truncated(short_data, 16);
    let answer = http
        .put(format!("{api}/api/v1/cars"))
        .body(car_of(short, short_data))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let message = answer.text().await.unwrap();
    assert!(
        message.contains("16-byte digest") && message.contains("20 to 32 bytes"),
        "{message}"
    );
    let listed = common::committed_cars(api).await;
    assert!(listed.is_empty(), "a refused CAR was recorded: {listed:?}");

    // 20 bytes: accepted, and served on every path.
    let data = b"a block under a 20-byte digest".to_vec();
    let cid = truncated(&data, 20);
    daemon.ingest(&car_of(cid, &data)).await;

    let raw = http
        .get(format!("{gateway}/ipfs/{cid}?format=raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.bytes().await.unwrap(), data);

    let car = http
        .get(format!("{gateway}/ipfs/{cid}?format=car"))
        .send()
        .await
        .unwrap();
    assert_eq!(car.status(), 200);
    assert_eq!(car.bytes().await.unwrap(), car_of(cid, &data));

    let mut client = BitswapClient::connect(&daemon.swarm_addr()).await;
    client.want(&[cid], WantType::Block).await;
    let heard = client
        .collect(Duration::from_secs(10), |h| h.blocks.contains_key(&cid))
        .await;
    assert_eq!(
        heard.blocks.get(&cid).map(|b| b.to_vec()),
        Some(data),
        "Bitswap answer (DONT_HAVE: {:?})",
        heard.dont_haves
    );
}
