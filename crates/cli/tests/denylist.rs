//! Denylists (issue 17, item 3) on a running daemon: each rule kind of IPIP-383 (a CID, a CID
//! and path, a double-hashed CID, a `status:451` hint) blocks on each path that serves or names
//! content: the gateway (410 / 451, whatever the format), Bitswap (DONT_HAVE, never the block),
//! the Delegated Routing API (no provider); lists reload without a restart; refusals are
//! counted per list. The parser and matcher are tested against the spec's examples in
//! `crates/denylist`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cid::Cid;
use common::{BitswapClient, Ports, Replica, add_tree, hydrant_bin, run_json};
use hydrant_bitswap::WantType;
use multihash_codetable::{Code, MultihashDigest};

fn raw(data: &[u8]) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(data))
}

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(hydrant_bin());
    command.arg("--repo").arg(repo);
    command
}

/// The modern double hash of a CID (compact-denylist-format.md § "`//DOUBLE-HASH`"): the
/// base58btc sha2-256 multihash of the base58btc multihash of the CID.
fn double_hash(cid: &Cid) -> String {
    let inner = Cid::new_v0(*cid.hash()).unwrap().to_string();
    Cid::new_v0(Code::Sha2_256.digest(inner.as_bytes()))
        .unwrap()
        .to_string()
}

async fn status(url: String) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_rule_kind_blocks_on_every_path_and_lists_reload() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    run_json(hydrant(&repo).args(["init", "--json"]));
    std::fs::write(
        repo.join("config.toml"),
        "[dht]\nenabled = false\n[denylist]\nreload_secs = 1\n",
    )
    .unwrap();

    // A directory with a public and a secret file, and four raw blocks.
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("public.txt"), "for everyone").unwrap();
    std::fs::write(site.join("secret.txt"), "for no one").unwrap();
    let root = add_tree(&repo, &site);
    let blocks: Vec<&[u8]> = vec![
        b"denied by CID",
        b"denied by double hash",
        b"legal",
        b"free",
    ];
    let cids: Vec<Cid> = blocks.iter().map(|b| raw(b)).collect();
    let mut car = hydrant_car::encode_v1_header(&cids);
    for (cid, data) in cids.iter().zip(&blocks) {
        hydrant_car::encode_section(cid, data, &mut car);
    }
    let car_path = dir.path().join("blocks.car");
    std::fs::write(&car_path, &car).unwrap();
    run_json(hydrant(&repo).args(["ingest", "--json"]).arg(&car_path));

    let lists = repo.join("denylists");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("test.deny"),
        format!(
            "version: 1\nname: test\n---\n/ipfs/{}\n/ipfs/{root}/secret.txt\n//{}\n/ipfs/{} status:451\n",
            cids[0],
            double_hash(&cids[1]),
            cids[2],
        ),
    )
    .unwrap();

    let daemon = Replica::start(&repo, Ports::free());
    let gateway = daemon.info.gateway_url.clone();
    let raw_url = |cid: &Cid| format!("{gateway}/ipfs/{cid}?format=raw");

    // The gateway, whatever the format.
    assert_eq!(status(raw_url(&cids[0])).await, 410);
    assert_eq!(
        status(format!("{gateway}/ipfs/{}?format=car", cids[0])).await,
        410
    );
    assert_eq!(status(raw_url(&cids[1])).await, 410, "double hash");
    assert_eq!(status(raw_url(&cids[2])).await, 451, "status hint");
    assert_eq!(status(raw_url(&cids[3])).await, 200);
    assert_eq!(
        status(format!("{gateway}/ipfs/{root}/secret.txt?format=car")).await,
        410
    );
    assert_eq!(
        status(format!("{gateway}/ipfs/{root}/public.txt?format=car")).await,
        200,
        "a sibling path is not blocked"
    );
    let body = reqwest::get(raw_url(&cids[0]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("test.deny") && body.contains("line 4"),
        "{body}"
    );

    // Bitswap: DONT_HAVE, never the block.
    let mut bitswap = BitswapClient::connect(&daemon.swarm_addr()).await;
    bitswap.want(&cids, WantType::Block).await;
    let heard = bitswap
        .collect(Duration::from_secs(10), |h| {
            h.dont_haves.len() + h.blocks.len() >= 4
        })
        .await;
    for denied in &cids[..3] {
        assert!(heard.dont_haves.contains(denied), "{denied}: {heard:?}");
        assert!(!heard.blocks.contains_key(denied));
    }
    assert!(heard.blocks.contains_key(&cids[3]));

    // Delegated routing: no provider for a denied block.
    let providers = |cid: Cid| {
        let gateway = gateway.clone();
        async move {
            let answer = reqwest::Client::new()
                .get(format!("{gateway}/routing/v1/providers/{cid}"))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let (code, text) = providers(cids[0]).await;
    assert!(
        code == 404 || !text.contains(&daemon.info.peer_id),
        "{code} {text}"
    );
    let (code, text) = providers(cids[3]).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(&daemon.info.peer_id), "{text}");

    // A new list applies without a restart (the free block was cached: still refused); its
    // removal lifts it.
    std::fs::write(lists.join("more.deny"), format!("/ipfs/{}\n", cids[3])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(raw_url(&cids[3])).await != 410 {
        assert!(Instant::now() < deadline, "the new list was never loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_file(lists.join("more.deny")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(raw_url(&cids[3])).await != 200 {
        assert!(Instant::now() < deadline, "the removed list still applies");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let metrics = daemon.metrics().await;
    let refused = metrics
        .get("hydrant_denylist_refusals_total{list=\"test.deny\"}")
        .copied()
        .unwrap_or_default();
    assert!(refused >= 6.0, "{refused}");

    // A list that does not parse refuses the start, naming the file and line.
    drop(daemon);
    std::fs::write(lists.join("bad.deny"), "/ipfs/QmNotACid\n").unwrap();
    let out = hydrant(&repo).arg("daemon").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.deny") && stderr.contains("line 1"),
        "{stderr}"
    );
}

/// `[denylist] urls`: a list fetched over HTTP at start-up applies like a local one.
#[tokio::test]
async fn lists_fetched_from_a_url_apply() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    run_json(hydrant(&repo).args(["init", "--json"]));
    let (denied, free): (&[u8], &[u8]) = (b"denied by a fetched list", b"not listed");
    let cids = [raw(denied), raw(free)];
    let mut car = hydrant_car::encode_v1_header(&cids);
    for (cid, data) in cids.iter().zip([denied, free]) {
        hydrant_car::encode_section(cid, data, &mut car);
    }
    let car_path = dir.path().join("blocks.car");
    std::fs::write(&car_path, &car).unwrap();

    // A one-file HTTP server: every request gets the list.
    let list = format!("/ipfs/{}\n", cids[0]);
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/lists/remote.deny", server.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in server.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut conn, &mut request);
            let _ = std::io::Write::write_all(
                &mut conn,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
                    list.len()
                )
                .as_bytes(),
            );
        }
    });
    std::fs::write(
        repo.join("config.toml"),
        format!("[dht]\nenabled = false\n[denylist]\nreload_secs = 1\nurls = [{url:?}]\n"),
    )
    .unwrap();
    run_json(hydrant(&repo).args(["ingest", "--json"]).arg(&car_path));
    let daemon = Replica::start(&repo, Ports::free());
    let gateway = daemon.info.gateway_url.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(format!("{gateway}/ipfs/{}?format=raw", cids[0])).await != 410 {
        assert!(Instant::now() < deadline, "the fetched list never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        status(format!("{gateway}/ipfs/{}?format=raw", cids[1])).await,
        200
    );
    let fetched: Vec<_> = std::fs::read_dir(repo.join("denylists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        fetched.len() == 1 && fetched[0].starts_with("url-") && fetched[0].ends_with(".deny"),
        "{fetched:?}"
    );
}
