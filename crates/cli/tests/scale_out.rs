//! Scale-out on real infrastructure: `hydrant daemon` replicas sharing one Garage bucket (S3)
//! and one PostgreSQL database, request accounting from the daemon's own counters, and
//! backend outages.

mod common;

use std::time::{Duration, Instant};

use cid::Cid;
use common::{Backends, BitswapClient, Ports, Replica, make_repo, metric, store_requests};
use hydrant_bitswap::WantType;
use hydrant_testkit::fixture;
use multihash_codetable::{Code, MultihashDigest};
use object_store::ObjectStoreExt;

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;

/// Every (CID, block) of a CAR.
fn sections(car: &[u8]) -> Vec<(Cid, Vec<u8>)> {
    let mut decoder = hydrant_car::CarDecoder::new(hydrant_car::Limits::default());
    decoder.push(car);
    let mut out = Vec::new();
    while let Ok(Some(event)) = decoder.next_event() {
        if let hydrant_car::Event::Section(s) = event {
            out.push((s.cid, s.data.to_vec()));
        }
    }
    out
}

fn raw_cid(data: &[u8]) -> Cid {
    Cid::new_v1(RAW, Code::Sha2_256.digest(data))
}

/// CIDs of blocks nobody stored.
fn absent_cids(n: u32, salt: &str) -> Vec<Cid> {
    (0..n)
        .map(|i| raw_cid(format!("absent {salt} {i}").as_bytes()))
        .collect()
}

async fn gateway_block(replica: &Replica, cid: &Cid) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(format!(
            "{}/ipfs/{cid}?format=raw",
            replica.info.gateway_url
        ))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_or(reqwest::StatusCode::REQUEST_TIMEOUT, |r| r.status())
}

/// Waits until every CID is served by `replica`'s gateway (200), at most `within`.
async fn wait_served(replica: &Replica, cids: &[Cid], within: Duration) -> Duration {
    let started = Instant::now();
    for cid in cids {
        loop {
            let status = gateway_block(replica, cid).await;
            if status == 200 {
                break;
            }
            assert!(
                started.elapsed() < within,
                "{cid} not served after {within:?} (last status {status})\n{}",
                replica.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_one_bucket_and_one_database() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    make_repo(&a_dir, &backends, None, "");
    make_repo(&b_dir, &backends, Some(&a_dir.join("identity.key")), "");
    let a = Replica::start(&a_dir, Ports::free());
    let b = Replica::start(&b_dir, Ports::free());
    assert_eq!(
        a.info.peer_id, b.info.peer_id,
        "replicas share one identity"
    );

    // A CAR uploaded through A is served by B within seconds (B's presence filter follows the
    // database's commit feed).
    let car = fixture("go-car/sample-v1-noidentity.car");
    let summary = a.ingest(&car).await;
    let cids: Vec<Cid> = sections(&car).into_iter().map(|(cid, _)| cid).collect();
    let took = wait_served(&b, &cids[..1], Duration::from_secs(10)).await;
    let sample: Vec<Cid> = cids.iter().copied().step_by(25).collect();
    wait_served(&b, &sample, Duration::from_secs(30)).await;
    eprintln!(
        "{} blocks ingested through A served by B after {took:?}",
        cids.len()
    );
    assert!(summary["car_key"].as_str().unwrap().starts_with("cars/"));

    // A CAR uploaded straight to the bucket and indexed in place through B (`hydrant ingest
    // s3://...` talks to B's daemon): served by A, and not copied.
    let bucket = backends.bucket();
    let direct = fixture("go-car/sample-v2-indexless.car");
    let key = "uploads/direct.car";
    bucket
        .put(&object_store::path::Path::from(key), direct.clone().into())
        .await
        .unwrap();
    let objects_before = list_keys(&bucket).await;
    let indexed = common::run_json(
        std::process::Command::new(common::HYDRANT)
            .arg("--repo")
            .arg(&b_dir)
            .args(["ingest", "--json"])
            .arg(format!("s3://{}/{key}", backends.garage.bucket())),
    );
    assert_eq!(indexed["car_key"], key);
    assert_eq!(
        list_keys(&bucket).await,
        objects_before,
        "indexing copied the CAR"
    );
    let direct_cids: Vec<Cid> = sections(&direct)
        .into_iter()
        .map(|(c, _)| c)
        .step_by(25)
        .collect();
    wait_served(&a, &direct_cids, Duration::from_secs(10)).await;

    // A bucket that is not the node's is refused with an explanation.
    let out = std::process::Command::new(common::HYDRANT)
        .arg("--repo")
        .arg(&b_dir)
        .args(["ingest", "s3://another-bucket/x.car"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage.bucket"));
}

async fn list_keys(bucket: &object_store::aws::AmazonS3) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let mut keys: Vec<String> = bucket
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn absent_wants_and_an_idle_minute_cost_no_storage_request() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    make_repo(dir.path(), &backends, None, "");
    let replica = Replica::start(dir.path(), Ports::free());
    let car = fixture("go-car/sample-v1-noidentity.car");
    replica.ingest(&car).await;
    let present: Vec<Cid> = sections(&car).into_iter().map(|(c, _)| c).collect();

    let before = replica.metrics().await;
    let mut client = BitswapClient::connect(&replica.swarm_addr()).await;
    let absent = absent_cids(10_000, "wants");
    for batch in absent.chunks(1_000) {
        client.want(batch, WantType::Have).await;
        let want = client.heard().dont_haves.len() + batch.len();
        client
            .collect(Duration::from_secs(30), |h| h.dont_haves.len() >= want)
            .await;
    }
    assert_eq!(
        client.heard().dont_haves.len(),
        10_000,
        "every absent block answered DONT_HAVE"
    );
    let after = replica.metrics().await;
    assert_eq!(
        store_requests(&after),
        store_requests(&before),
        "absent wants reached the object store"
    );
    let lookups = metric(&after, "hydrant_index_lookups_total")
        - metric(&before, "hydrant_index_lookups_total");
    let passed_absent = lookups;
    eprintln!("10000 absent WANT_HAVE: {passed_absent} index lookups (filter false positives)");
    // false_positive_rate 0.001: expect ~10; allow for chance.
    assert!(
        passed_absent <= 40.0,
        "{passed_absent} absent wants reached the index"
    );

    // Present blocks still get HAVE (or the block itself, when small): the filter hides none.
    client.want(&present, WantType::Have).await;
    let answered = |h: &common::Heard| {
        present
            .iter()
            .filter(|c| h.haves.contains(c) || h.blocks.contains_key(c))
            .count()
    };
    let heard = client
        .collect(Duration::from_secs(30), |h| answered(h) >= present.len())
        .await;
    assert_eq!(
        heard.dont_haves.len(),
        10_000,
        "only absent blocks answered DONT_HAVE"
    );
    assert_eq!(answered(heard), present.len());
    assert!(present.iter().all(|c| !heard.dont_haves.contains(c)));

    // Idle for a minute: no request to the object store at all.
    let idle_start = store_requests(&replica.metrics().await);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let idle_end = store_requests(&replica.metrics().await);
    assert_eq!(
        idle_end, idle_start,
        "an idle replica sent object-store requests"
    );
}

/// A UnixFS-shaped DAG of `leaves` raw blocks of `leaf_size` pseudo-random bytes under one
/// DAG-PB root, as a CARv1 (root first, leaves in order): (root, CAR, file bytes).
fn big_dag(leaves: usize, leaf_size: usize) -> (Cid, Vec<u8>, Vec<u8>) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut file = Vec::with_capacity(leaves * leaf_size);
    let mut leaf_cids = Vec::with_capacity(leaves);
    for _ in 0..leaves {
        let start = file.len();
        for _ in 0..leaf_size / 8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.extend_from_slice(&state.to_le_bytes());
        }
        leaf_cids.push(raw_cid(&file[start..]));
    }
    // PBNode { Links (2): PBLink { Hash (1), Name (2) "", Tsize (3) }..., Data (1): UnixFS File }
    let mut root = Vec::new();
    for cid in &leaf_cids {
        let mut link = Vec::new();
        let hash = cid.to_bytes();
        push_field(&mut link, 1, &hash);
        push_field(&mut link, 2, b"");
        link.push(3 << 3);
        push_varint(&mut link, leaf_size as u64);
        push_field(&mut root, 2, &link);
    }
    let mut unixfs = vec![0x08, 0x02, 0x18]; // Type = File, filesize follows
    push_varint(&mut unixfs, file.len() as u64);
    for _ in 0..leaves {
        unixfs.push(0x20); // blocksizes
        push_varint(&mut unixfs, leaf_size as u64);
    }
    push_field(&mut root, 1, &unixfs);
    let root_cid = Cid::new_v1(DAG_PB, Code::Sha2_256.digest(&root));
    let mut car = hydrant_car::encode_v1_header(&[root_cid]);
    hydrant_car::encode_section(&root_cid, &root, &mut car);
    for (cid, chunk) in leaf_cids.iter().zip(file.chunks(leaf_size)) {
        hydrant_car::encode_section(cid, chunk, &mut car);
    }
    (root_cid, car, file)
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn push_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2);
    push_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_dag_is_read_with_one_get_per_coalesced_range() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    make_repo(dir.path(), &backends, None, "");
    let replica = Replica::start(dir.path(), Ports::free());
    // 100 MB in 400 blocks of 256 KiB, as ipfs-car and Kubo chunk files.
    let (root, car, _file) = big_dag(400, 256 * 1024);
    replica.ingest(&car).await;

    let before = replica.metrics().await;
    let fetched = reqwest::Client::new()
        .get(format!(
            "{}/ipfs/{root}?format=car&dag-scope=all&car-dups=n",
            replica.info.gateway_url
        ))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let after = replica.metrics().await;
    let got: Vec<(Cid, Vec<u8>)> = sections(&fetched);
    assert_eq!(got.len(), 401, "root and every leaf");
    assert_eq!(
        got,
        sections(&car),
        "the DAG's blocks, in order, byte for byte"
    );

    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    let gets = delta("hydrant_object_store_requests_total{op=\"get\",outcome=\"started\"}");
    let ranges = delta("hydrant_read_ranges_total");
    let blocks = delta("hydrant_read_blocks_total");
    let bytes = delta("hydrant_read_bytes_total");
    eprintln!(
        "100 MB DAG over the gateway: {blocks} blocks in {ranges} coalesced ranges, {gets} GETs \
         ({:.1} blocks and {:.1} MiB per GET)",
        blocks / gets,
        bytes / gets / 1048576.0
    );
    // The stored CAR is in the walk's order, so the gateway streams its sections (DESIGN.md,
    // "Gateway passthrough"): reads of the stored file doubling from 256 KiB up to
    // `limits.gateway_request_bytes` (4 MiB), about 30 for 100 MB; the blocks the walk reads
    // through the blockstore (the root) take one GET per coalesced range.
    assert!(ranges <= gets, "one GET per blockstore range");
    assert!(
        blocks >= 1.0,
        "the walk's first block is read through the blockstore"
    );
    assert!(
        gets <= 32.0,
        "{gets} GETs for 100 MB: reads are not coalesced"
    );
    assert!(
        bytes_per_get(gets, &fetched) >= 3.0 * 1048576.0,
        "{gets} GETs for {} bytes: reads are too small",
        fetched.len()
    );
}

/// Bytes of the response per GET (whatever path read them).
fn bytes_per_get(gets: f64, body: &[u8]) -> f64 {
    body.len() as f64 / gets
}

/// Fault test shared by the S3 and PostgreSQL outages: `which` backend is stopped for 30 s
/// while a client keeps fetching, then restarted.
async fn outage(which: &str) {
    let mut backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    // No read cache: every block read goes to the backends.
    make_repo(dir.path(), &backends, None, "[read]\ncache_bytes = 0\n");
    let mut replica = Replica::start(dir.path(), Ports::free());
    let car = fixture("go-car/sample-v1-noidentity.car");
    replica.ingest(&car).await;
    // 20 of its blocks are enough to see every answer.
    let present: Vec<Cid> = sections(&car)
        .into_iter()
        .map(|(c, _)| c)
        .step_by(50)
        .collect();
    let mut client = BitswapClient::connect(&replica.swarm_addr()).await;
    let rss_before = replica.rss_bytes();

    match which {
        "s3" => backends.garage.kill().unwrap(),
        _ => backends.pg.stop().unwrap(),
    }
    let down_at = Instant::now();
    // While it is down (30 s): clients keep asking; no answer says "absent".
    let mut rss_peak = rss_before;
    let mut readiness_reported = false;
    let mut round = 0;
    while down_at.elapsed() < Duration::from_secs(30) {
        round += 1;
        let status = gateway_block(&replica, &present[round % present.len()]).await;
        assert!(
            status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT,
            "{which} down: gateway answered {status} for a stored block"
        );
        client.want(&present, WantType::Block).await;
        let (code, body) = replica.readiness();
        if code == 503 {
            let field = if which == "s3" {
                "object_store"
            } else {
                "index"
            };
            assert_ne!(body[field], "ok", "{body}");
            readiness_reported = true;
        }
        rss_peak = rss_peak.max(replica.rss_bytes());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let heard = client.collect(Duration::from_millis(500), |_| false).await;
    assert!(
        present.iter().all(|c| !heard.dont_haves.contains(c)),
        "{which} down: a stored block was answered DONT_HAVE"
    );
    assert!(
        readiness_reported,
        "readiness never reported the {which} outage"
    );
    assert!(
        rss_peak < rss_before + 64 * 1024 * 1024,
        "memory grew during the outage: {rss_before} -> {rss_peak} bytes"
    );

    match which {
        "s3" => backends.garage.restart().unwrap(),
        _ => backends.pg.restart().unwrap(),
    }
    let back_at = Instant::now();
    replica.wait_ready(Duration::from_secs(15));
    let ready_after = back_at.elapsed();
    let took = wait_served(&replica, &present[..1], Duration::from_secs(15)).await;
    wait_served(&replica, &present, Duration::from_secs(15)).await;
    eprintln!(
        "{which} outage: ready again {ready_after:?} after the restart, serving after {:?}; \
         RSS {} -> {} MiB",
        back_at.elapsed(),
        rss_before >> 20,
        rss_peak >> 20
    );
    assert!(
        took < Duration::from_secs(15),
        "serving resumed only after {took:?}"
    );
    // Bitswap serves again too.
    client.want(&present, WantType::Block).await;
    let heard = client
        .collect(Duration::from_secs(15), |h| {
            present.iter().all(|c| h.blocks.contains_key(c))
        })
        .await;
    assert!(
        present.iter().all(|c| heard.blocks.contains_key(c)),
        "Bitswap did not resume"
    );
    assert!(
        replica.child.try_wait().unwrap().is_none(),
        "the daemon exited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_outage_is_an_error_not_absence_and_service_resumes() {
    outage("s3").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_outage_is_an_error_not_absence_and_service_resumes() {
    outage("postgres").await;
}
