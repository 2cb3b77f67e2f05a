//! The presence filter's snapshot (scale issue, item 1), with the embedded index: a clean stop
//! writes it, the next start loads it instead of scanning the index, and a snapshot that no
//! longer describes the index (blocks ingested while the daemon was stopped) or is damaged is
//! refused and rebuilt, so a block committed after the snapshot is never answered "absent".

mod common;

use std::path::Path;

use common::{Ports, Replica};

/// Gateway status of the raw block `cid`.
async fn raw_status(daemon: &Replica, cid: &cid::Cid) -> u16 {
    reqwest::get(format!("{}/ipfs/{cid}?format=raw", daemon.info.gateway_url))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Starts a daemon on `repo`: (the daemon, filter rebuilds so far, whether it logged loading
/// the snapshot).
async fn start(repo: &Path) -> (Replica, f64, bool) {
    let daemon = Replica::start(repo, Ports::free());
    let metrics = daemon.metrics().await;
    let rebuilds = common::metric(&metrics, "hydrant_presence_filter_rebuilds_total");
    assert_eq!(
        common::metric(&metrics, "hydrant_presence_filter_built"),
        1.0,
        "ready means built"
    );
    let loaded = daemon
        .log()
        .contains("presence filter loaded from its snapshot");
    (daemon, rebuilds, loaded)
}

fn ingest_offline(repo: &Path, dir: &Path, car: &[u8]) {
    let path = dir.join("more.car");
    std::fs::write(&path, car).unwrap();
    common::run_json(
        std::process::Command::new(common::hydrant_bin())
            .arg("--repo")
            .arg(repo)
            .args(["ingest", "--json"])
            .arg(&path),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_snapshot_and_a_stale_or_damaged_one_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (first, car) = common::raw_file_car(16, 1024);
    let repo = common::offline_repo(dir.path(), &car, "");
    let snapshot = repo.join("filter.snapshot");
    let absent = common::raw_file_car(1, 4096).0[0];

    // First start: no snapshot, the filter is built by scanning; the stop writes one.
    let (mut daemon, rebuilds, loaded) = start(&repo).await;
    assert_eq!((rebuilds, loaded), (1.0, false));
    daemon.signal_and_wait("TERM");
    assert!(snapshot.exists(), "a clean stop writes the snapshot");

    // Second start: loaded, not rebuilt; present blocks served, an absent one ruled out by the
    // filter.
    let (mut daemon, rebuilds, loaded) = start(&repo).await;
    assert_eq!((rebuilds, loaded), (0.0, true), "{}", daemon.log());
    assert_eq!(raw_status(&daemon, &first[5]).await, 200);
    assert_eq!(raw_status(&daemon, &absent).await, 404);
    let metrics = daemon.metrics().await;
    assert!(
        common::metric(
            &metrics,
            r#"hydrant_presence_filter_checks_total{result="absent"}"#
        ) >= 1.0
    );
    daemon.signal_and_wait("TERM");

    // Blocks committed while the daemon was stopped: the snapshot no longer describes the
    // index. It must not be used (it would answer "absent" for them).
    let (later, car) = common::raw_file_car(16, 2048);
    ingest_offline(&repo, dir.path(), &car);
    let (mut daemon, rebuilds, loaded) = start(&repo).await;
    assert_eq!((rebuilds, loaded), (1.0, false), "{}", daemon.log());
    assert!(daemon.log().contains("the index changed since"));
    assert_eq!(raw_status(&daemon, &later[7]).await, 200);
    assert_eq!(raw_status(&daemon, &first[5]).await, 200);
    daemon.signal_and_wait("TERM");

    // A damaged snapshot is refused, whatever its position says.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    let (daemon, rebuilds, loaded) = start(&repo).await;
    assert_eq!((rebuilds, loaded), (1.0, false), "{}", daemon.log());
    assert!(daemon.log().contains("checksum mismatch"));
    assert_eq!(raw_status(&daemon, &later[7]).await, 200);
}

/// Replicas on PostgreSQL: one stops (writing its snapshot, locally and in the shared object
/// store), another commits a CAR meanwhile; the first loads its snapshot at restart (no scan)
/// and catches up from the commit feed before its filter answers, so the CAR committed after
/// the snapshot is served at once. A third replica on an empty repository loads the shared
/// copy the same way. The filter is sized for 10^7 blocks, so the snapshot (about 18 MB) goes
/// to the object store as a multipart upload of 16 MiB parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_loads_its_snapshot_and_catches_up_with_commits_made_meanwhile() {
    let backends = common::Backends::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let make = |repo: &Path, identity: Option<&Path>| {
        common::make_repo(repo, &backends, identity, "");
        let config = std::fs::read_to_string(repo.join("config.toml")).unwrap();
        let config = config.replace("expected_blocks = 100000", "expected_blocks = 10000000");
        std::fs::write(repo.join("config.toml"), config).unwrap();
    };
    make(&a, None);
    make(&b, Some(&a.join("identity.key")));
    let (first, car) = common::raw_file_car(16, 1024);

    let mut replica_a = Replica::start(&a, Ports::free());
    replica_a.ingest(&car).await;
    replica_a.signal_and_wait("TERM");
    let snapshot_bytes = std::fs::metadata(a.join("filter.snapshot")).unwrap().len();
    assert!(
        snapshot_bytes > hydrant_node::SHARED_UPLOAD_PART as u64,
        "{snapshot_bytes} bytes: one part"
    );

    let replica_b = Replica::start(&b, Ports::free());
    let (later, car) = common::raw_file_car(16, 2048);
    replica_b.ingest(&car).await;

    let (replica_a, rebuilds, loaded) = start(&a).await;
    assert_eq!((rebuilds, loaded), (0.0, true), "{}", replica_a.log());
    assert_eq!(raw_status(&replica_a, &later[7]).await, 200);
    assert_eq!(raw_status(&replica_a, &first[3]).await, 200);

    let c = dir.path().join("c");
    make(&c, Some(&a.join("identity.key")));
    assert!(!c.join("filter.snapshot").exists());
    let (replica_c, rebuilds, loaded) = start(&c).await;
    assert_eq!((rebuilds, loaded), (0.0, true), "{}", replica_c.log());
    assert!(
        replica_c.log().contains("object store"),
        "{}",
        replica_c.log()
    );
    assert_eq!(raw_status(&replica_c, &later[7]).await, 200);
    assert_eq!(raw_status(&replica_c, &first[3]).await, 200);
}

/// While running, the filter is snapshotted every `filter.snapshot_interval_secs` once CARs
/// were committed, so a daemon killed with SIGKILL (no clean stop) restarts from the snapshot
/// taken after its last ingest, and serves that ingest's blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_restarts_from_its_periodic_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (first, car) = common::raw_file_car(16, 1024);
    let repo = common::offline_repo(
        dir.path(),
        &car,
        "[filter]\nsnapshot_interval_secs = 1\npoll_interval_ms = 200\n",
    );
    let snapshot = repo.join("filter.snapshot");
    let (mut daemon, _, _) = start(&repo).await;
    let (later, car) = common::raw_file_car(16, 2048);
    daemon.ingest(&car).await;
    // The next snapshot after the ingest: its position counts the new CAR.
    let written = std::fs::metadata(&snapshot)
        .ok()
        .map(|m| m.modified().unwrap());
    for _ in 0..100 {
        let now = std::fs::metadata(&snapshot)
            .ok()
            .map(|m| m.modified().unwrap());
        if now.is_some() && now != written {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    daemon.signal_and_wait("KILL");

    let (daemon, rebuilds, loaded) = start(&repo).await;
    assert_eq!((rebuilds, loaded), (0.0, true), "{}", daemon.log());
    assert_eq!(raw_status(&daemon, &later[7]).await, 200);
    assert_eq!(raw_status(&daemon, &first[3]).await, 200);
}
