//! Shared by the scale-out tests: real backends (Garage for S3, a private PostgreSQL cluster),
//! `hydrant daemon` replicas as child processes configured to share them, a Prometheus scrape,
//! and a minimal Bitswap 1.2.0 client.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cid::Cid;
use futures::StreamExt;
use hydrant_bitswap::{
    MAX_MESSAGE_SIZE, Message, PresenceType, ProtocolVersion, WantType, WantlistEntry,
    decode_message, read_frame, write_frame,
};
use hydrant_node::DaemonInfo;
use hydrant_node::ProcessMemory;
use hydrant_testkit::{TempGarage, TempPostgres};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Stream};
use tokio::sync::mpsc;

pub const HYDRANT: &str = env!("CARGO_BIN_EXE_hydrant");
/// The `hydrant` binary the daemon tests run: `HYDRANT_BIN` when set (where several checkouts
/// share one target directory, another checkout's build can replace the binary Cargo linked
/// for these tests), else [`HYDRANT`].
pub fn hydrant_bin() -> String {
    std::env::var("HYDRANT_BIN").unwrap_or_else(|_| HYDRANT.to_owned())
}

/// One S3 server and one PostgreSQL cluster, shared by every replica of a test.
pub struct Backends {
    pub garage: TempGarage,
    pub pg: TempPostgres,
    /// A schema of its own, so tests sharing a server never see each other's rows.
    pub schema: String,
}

impl Backends {
    pub fn start() -> Self {
        let garage = TempGarage::start().unwrap_or_else(|e| panic!("Garage: {e}"));
        let pg = TempPostgres::start().unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
        Self {
            garage,
            pg,
            schema: hydrant_testkit::unique_schema("scale"),
        }
    }

    /// An object_store client of the bucket, as an operator's upload tool would use.
    pub fn bucket(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.garage.endpoint())
            .with_region(self.garage.region())
            .with_bucket_name(self.garage.bucket())
            .with_access_key_id(self.garage.access_key_id())
            .with_secret_access_key(self.garage.secret_access_key())
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("S3 client")
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Fixed ports of one replica, kept across its restarts (the load balancer points at them).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub swarm: u16,
    pub gateway: u16,
    pub api: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            swarm: free_port(),
            gateway: free_port(),
            api: free_port(),
        }
    }
}

/// The committed CARs a daemon's API lists (`GET /api/v1/cars`, up to 1000).
pub async fn committed_cars(api_url: &str) -> Vec<serde_json::Value> {
    reqwest::Client::new()
        .get(format!("{api_url}/api/v1/cars?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs `command`, asserts it succeeded (showing its stderr otherwise) and parses the one JSON
/// value it printed on stdout.
pub fn run_json(command: &mut Command) -> serde_json::Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `hydrant add -r --json DIR` on the repository `repo` (through its daemon when one runs);
/// the CID of the directory itself.
pub fn add_tree(repo: &Path, dir: &Path) -> String {
    let out = Command::new(hydrant_bin())
        .arg("--repo")
        .arg(repo)
        .args(["add", "-r", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = dir.file_name().unwrap().to_str().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == name)
        .unwrap()["cid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Wantlist entries for `cids`, each `want_type`, priority 1, asking for DONT_HAVE.
pub fn wantlist(cids: &[Cid], want_type: WantType) -> Vec<WantlistEntry> {
    cids.iter()
        .map(|cid| WantlistEntry {
            cid: *cid,
            priority: 1,
            cancel: false,
            want_type,
            send_dont_have: true,
        })
        .collect()
}

/// `blocks` raw blocks of `block_size` bytes, all different (each 8-byte word is its block and
/// word number), and the CARv1 holding them in that order with the first as its root.
pub fn raw_file_car(blocks: usize, block_size: usize) -> (Vec<Cid>, Vec<u8>) {
    use multihash_codetable::{Code, MultihashDigest};
    let mut cids = Vec::with_capacity(blocks);
    let mut body = Vec::new();
    for i in 0..blocks as u64 {
        let mut data = vec![0u8; block_size];
        for (j, chunk) in data.chunks_mut(8).enumerate() {
            let word = i << 32 | j as u64;
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
        hydrant_car::encode_section(&cid, &data, &mut body);
        cids.push(cid);
    }
    let mut car = hydrant_car::encode_v1_header(&cids[..1]);
    car.extend(body);
    (cids, car)
}

/// 16 raw blocks of 1 MiB under a DAG-CBOR root (a list of links), as a CARv1: the root, the
/// leaves, and the CAR bytes.
pub fn dag_car() -> (Cid, Vec<Cid>, Vec<u8>) {
    use multihash_codetable::{Code, MultihashDigest};
    let mut leaves = Vec::new();
    let mut body = Vec::new();
    for i in 0..16u64 {
        let mut data = vec![0u8; 1024 * 1024];
        for (j, chunk) in data.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(i << 32 | j as u64).to_le_bytes());
        }
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
        hydrant_car::encode_section(&cid, &data, &mut body);
        leaves.push(cid);
    }
    // CBOR: array(16) of tag 42 (CID), each a byte string 0x00 || CID bytes.
    let mut root_block = vec![0x80 | leaves.len() as u8];
    for leaf in &leaves {
        let bytes = leaf.to_bytes();
        root_block.extend([0xd8, 0x2a, 0x58, bytes.len() as u8 + 1, 0x00]);
        root_block.extend(bytes);
    }
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_block));
    let mut car = hydrant_car::encode_v1_header(&[root]);
    hydrant_car::encode_section(&root, &root_block, &mut car);
    car.extend(body);
    (root, leaves, car)
}

/// A local repository at `dir/repo` (DHT off, then the `extra` config lines) with `car`
/// ingested by `hydrant ingest` while no daemon runs, so a daemon started on it afterwards
/// measures serving only. Returns the repository's path.
pub fn offline_repo(dir: &Path, car: &[u8], extra: &str) -> PathBuf {
    let repo = dir.join("repo");
    run_json(
        Command::new(hydrant_bin())
            .arg("--repo")
            .arg(&repo)
            .args(["init", "--json"]),
    );
    std::fs::write(
        repo.join("config.toml"),
        format!("[dht]\nenabled = false\n{extra}\n"),
    )
    .unwrap();
    let car_path = dir.join("file.car");
    std::fs::write(&car_path, car).unwrap();
    run_json(
        Command::new(hydrant_bin())
            .arg("--repo")
            .arg(&repo)
            .args(["ingest", "--json"])
            .arg(&car_path),
    );
    std::fs::remove_file(&car_path).unwrap();
    repo
}

/// Starts `n` replicas of one identity on `backends` ([`make_replica_repos`] under `dir`), each
/// on free ports.
pub fn start_replicas(dir: &Path, backends: &Backends, n: usize, extra: &str) -> Vec<Replica> {
    make_replica_repos(dir, backends, n, extra)
        .iter()
        .map(|repo| Replica::start(repo, Ports::free()))
        .collect()
}

/// Makes `n` replica repositories `dir/r0` .. `dir/r{n-1}` on `backends` with `extra` config,
/// all with the identity `hydrant init` made for `r0` (replicas share one peer ID).
pub fn make_replica_repos(dir: &Path, backends: &Backends, n: usize, extra: &str) -> Vec<PathBuf> {
    let repos: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("r{i}"))).collect();
    make_repo(&repos[0], backends, None, extra);
    for repo in &repos[1..] {
        make_repo(repo, backends, Some(&repos[0].join("identity.key")), extra);
    }
    repos
}

/// Writes a repository for a replica of `backends`: config (S3 + PostgreSQL, no DHT), S3
/// credentials file, and `identity` copied in when given (replicas share one identity).
pub fn make_repo(dir: &Path, backends: &Backends, identity: Option<&Path>, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    run_json(
        Command::new(HYDRANT)
            .arg("--repo")
            .arg(dir)
            .args(["init", "--json"]),
    );
    if let Some(identity) = identity {
        std::fs::copy(identity, dir.join("identity.key")).unwrap();
    }
    let g = &backends.garage;
    std::fs::write(
        dir.join("s3.toml"),
        format!(
            "access_key_id = {:?}\nsecret_access_key = {:?}\n",
            g.access_key_id(),
            g.secret_access_key()
        ),
    )
    .unwrap();
    let config = format!(
        r#"[storage]
kind = "s3"
bucket = {bucket:?}
endpoint = {endpoint:?}
region = {region:?}
path_style = true
credentials_file = "s3.toml"
request_timeout_secs = 5
max_retries = 1

[index]
kind = "postgres"
url = {url:?}
schema = {schema:?}
pool_size = 8

[providers]
kind = "postgres"

[dht]
enabled = false

[filter]
expected_blocks = 100000
poll_interval_ms = 200

[shutdown]
drain_timeout_secs = 3

{extra}
"#,
        bucket = g.bucket(),
        endpoint = g.endpoint(),
        region = g.region(),
        url = backends.pg.url(),
        schema = backends.schema,
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
}

/// A `hydrant daemon` child process.
pub struct Replica {
    pub repo: PathBuf,
    pub ports: Ports,
    pub child: Child,
    pub info: DaemonInfo,
    log: PathBuf,
    exited: bool,
}

static REPLICA_NUMBER: AtomicU32 = AtomicU32::new(0);

impl Replica {
    /// Starts a daemon on `repo` with `ports`; returns once it printed its [`DaemonInfo`] and
    /// answers `/readyz` with 200 (at most 60 s).
    pub fn start(repo: &Path, ports: Ports) -> Self {
        Self::start_with(repo, ports, Command::new(hydrant_bin()))
    }

    /// As [`Replica::start`], with the process's file descriptor limit (soft and hard) set to
    /// `nofile`, as `ulimit -n` does.
    pub fn start_with_nofile(repo: &Path, ports: Ports, nofile: u64) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(hydrant_bin());
        Self::start_with(repo, ports, command)
    }

    /// Starts `command` (the `hydrant` binary, or a wrapper that execs it) as a daemon.
    fn start_with(repo: &Path, ports: Ports, mut command: Command) -> Self {
        let log = std::env::temp_dir().join(format!(
            "hydrant-replica-{}-{}.log",
            std::process::id(),
            REPLICA_NUMBER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut child = command
            .arg("--repo")
            .arg(repo)
            .arg("daemon")
            .args([
                "--swarm-listen",
                &format!("/ip4/127.0.0.1/tcp/{}", ports.swarm),
            ])
            .args(["--gateway-listen", &format!("127.0.0.1:{}", ports.gateway)])
            .args(["--api-listen", &format!("127.0.0.1:{}", ports.api)])
            .env(
                "HYDRANT_LOG",
                std::env::var("HYDRANT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: DaemonInfo = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "daemon did not start ({e}): {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let replica = Self {
            repo: repo.to_owned(),
            ports,
            child,
            info,
            log,
            exited: false,
        };
        replica.wait_ready(Duration::from_secs(60));
        replica
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `/readyz` answer: (HTTP status, JSON body).
    pub fn readiness(&self) -> (u16, serde_json::Value) {
        let url = format!("{}/readyz", self.info.api_url);
        match reqwest::blocking_get(&url) {
            Ok(answer) => answer,
            Err(e) => (0, serde_json::json!({ "error": e })),
        }
    }

    /// Waits until `/readyz` answers 200 *and* the presence filter is built (readiness does
    /// not wait for the filter; the tests count on its answers).
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.readiness();
            if status == 200 && body["filter_built"] == true {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica not ready: {status} {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a signal (`"TERM"`, `"KILL"`) and waits for the process to exit; returns how long
    /// that took.
    pub fn signal_and_wait(&mut self, signal: &str) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
        self.exited = true;
        started.elapsed()
    }

    /// False once [`signal_and_wait`](Self::signal_and_wait) stopped it.
    pub fn child_running(&self) -> bool {
        !self.exited
    }

    /// Resident memory of the process now and at most so far, in bytes (from /proc).
    pub fn memory(&self) -> ProcessMemory {
        ProcessMemory::of(self.child.id())
    }

    /// Resident memory of the process now, in bytes (from /proc).
    pub fn rss_bytes(&self) -> u64 {
        self.memory().rss_bytes
    }

    /// The TCP multiaddr of its swarm, with `/p2p/`.
    pub fn swarm_addr(&self) -> Multiaddr {
        self.info.swarm_addrs[0].parse().unwrap()
    }

    /// Every sample `name{labels...}` of the Prometheus scrape, summed per full series text.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let text = reqwest::get(format!("{}/metrics", self.info.api_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// Ingests a CAR file through this replica's API.
    pub async fn ingest(&self, car: &[u8]) -> serde_json::Value {
        let answer = reqwest::Client::new()
            .put(format!("{}/api/v1/cars", self.info.api_url))
            .body(car.to_vec())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
        answer.json().await.unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("HYDRANT_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("replica log kept: {}", self.log.display());
        }
    }
}

/// The status code of the response whose first bytes are `head`.
pub fn status_of(head: &[u8]) -> u16 {
    let line = String::from_utf8_lossy(head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

/// Object-store requests started, over every kind.
pub fn store_requests(metrics: &HashMap<String, f64>) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| {
            k.starts_with("hydrant_object_store_requests_total")
                && k.contains("outcome=\"started\"")
        })
        .map(|(_, v)| v)
        .sum()
}

/// One metric by its exact series text (0 when absent).
pub fn metric(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

mod reqwest {
    //! The few HTTP calls the tests make, on the workspace's reqwest.
    pub use ::reqwest::*;

    /// A GET from a plain thread (readiness polling outside the runtime): status and JSON.
    pub fn blocking_get(url: &str) -> std::result::Result<(u16, serde_json::Value), String> {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let answer = ::reqwest::Client::new()
                    .get(&url)
                    .timeout(std::time::Duration::from_secs(5))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = answer.status().as_u16();
                let body = answer.json().await.unwrap_or(serde_json::Value::Null);
                Ok((status, body))
            })
        })
        .join()
        .map_err(|_| "panicked".to_owned())?
    }
}

/// What a [`BitswapClient`] heard back, per CID.
#[derive(Debug, Default)]
pub struct Heard {
    pub blocks: HashMap<Cid, bytes::Bytes>,
    pub haves: std::collections::HashSet<Cid>,
    pub dont_haves: std::collections::HashSet<Cid>,
}

/// A Bitswap 1.2.0 client: its own libp2p swarm connected to one server.
pub struct BitswapClient {
    server: PeerId,
    control: libp2p_stream::Control,
    received: mpsc::Receiver<(Instant, Message)>,
    heard: Heard,
}

impl BitswapClient {
    /// Connects to `addr` (with `/p2p/`).
    pub async fn connect(addr: &Multiaddr) -> Self {
        let ClientSwarm {
            server,
            swarm,
            control,
            incoming,
        } = ClientSwarm::connect(addr, Duration::from_secs(120)).await;
        let received = receive_messages(incoming);
        tokio::spawn(drive(swarm));
        Self {
            server,
            control,
            received,
            heard: Heard::default(),
        }
    }

    /// Sends one wantlist message of `cids`, each `want_type`, asking for DONT_HAVE.
    pub async fn want(&mut self, cids: &[Cid], want_type: WantType) {
        self.try_want(cids, want_type)
            .await
            .expect("send the wantlist");
    }

    /// [`Self::want`], returning the error when the stream cannot be opened or written.
    pub async fn try_want(&mut self, cids: &[Cid], want_type: WantType) -> Result<(), String> {
        let message = Message {
            wantlist: wantlist(cids, want_type),
            ..Default::default()
        };
        let mut stream = self
            .control
            .open_stream(self.server, ProtocolVersion::V1_2_0.protocol())
            .await
            .map_err(|e| format!("open a Bitswap stream: {e}"))?;
        write_frame(&mut stream, &message.encode_frame())
            .await
            .map_err(|e| format!("write the wantlist: {e}"))?;
        futures::AsyncWriteExt::close(&mut stream)
            .await
            .map_err(|e| format!("close the stream: {e}"))
    }

    /// Collects answers until `done(&heard)` or `within` passes; returns what was heard.
    pub async fn collect(&mut self, within: Duration, done: impl Fn(&Heard) -> bool) -> &Heard {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.heard) {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some((_, message))) => {
                    for block in message.payload {
                        if let Ok(cid) = block.prefix.to_cid(&block.data) {
                            self.heard.blocks.insert(cid, block.data);
                        }
                    }
                    for presence in message.block_presences {
                        let set = match presence.presence {
                            PresenceType::Have => &mut self.heard.haves,
                            PresenceType::DontHave => &mut self.heard.dont_haves,
                        };
                        set.insert(presence.cid);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        &self.heard
    }

    pub fn heard(&self) -> &Heard {
        &self.heard
    }
}

/// A Bitswap 1.2.0 client with one long-lived want stream, for latency benchmarks: answers
/// arrive time-stamped as each frame is decoded (unlike [`BitswapClient`], which opens a stream
/// per wantlist).
pub struct WantStream {
    wants: Stream,
    /// (arrival, message), from [`receive_messages`].
    received: mpsc::Receiver<(Instant, Message)>,
}

impl WantStream {
    /// Connects to `addr` (with `/p2p/`) and opens the want stream.
    pub async fn connect(addr: &Multiaddr) -> Self {
        let ClientSwarm {
            server,
            swarm,
            mut control,
            incoming,
        } = ClientSwarm::connect(addr, Duration::from_secs(120)).await;
        let received = receive_messages(incoming);
        tokio::spawn(drive(swarm));
        let wants = control
            .open_stream(server, ProtocolVersion::V1_2_0.protocol())
            .await
            .expect("open the want stream");
        Self { wants, received }
    }

    /// Writes one wantlist message of WANT_BLOCKs (with DONT_HAVE asked for).
    pub async fn want(&mut self, cids: &[Cid]) {
        let message = Message {
            wantlist: wantlist(cids, WantType::Block),
            ..Default::default()
        };
        write_frame(&mut self.wants, &message.encode_frame())
            .await
            .expect("write the wantlist");
    }

    /// The next message's arrival and blocks (at most 60 s).
    pub async fn next(&mut self) -> (Instant, Vec<Cid>) {
        let (at, message) = tokio::time::timeout(Duration::from_secs(60), self.received.recv())
            .await
            .expect("an answer within 60 s")
            .expect("the client is running");
        let cids = message
            .payload
            .iter()
            .map(|b| b.prefix.to_cid(&b.data).expect("a valid prefix"))
            .collect();
        (at, cids)
    }
}

/// Reads every stream the server opens to the client (its answers) and forwards each decoded
/// message with the instant it was decoded (at most 4096 waiting).
fn receive_messages(
    mut incoming: libp2p_stream::IncomingStreams,
) -> mpsc::Receiver<(Instant, Message)> {
    let (tx, received) = mpsc::channel(4096);
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(Some(body)) = read_frame(&mut stream, MAX_MESSAGE_SIZE).await {
                    let message = decode_message(&body).expect("server sends valid messages");
                    if tx.send((Instant::now(), message)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    received
}

/// The value at quantile `p` (0 to 1) of `sorted` (ascending, not empty), nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A libp2p swarm (TCP, noise, yamux) with only `libp2p-stream`, connected to one server and
/// accepting the server's Bitswap 1.2.0 streams: the part every simulated peer shares.
pub struct ClientSwarm {
    pub server: PeerId,
    pub swarm: libp2p::Swarm<libp2p_stream::Behaviour>,
    pub control: libp2p_stream::Control,
    pub incoming: libp2p_stream::IncomingStreams,
}

impl ClientSwarm {
    /// Dials `addr` (with `/p2p/`) and returns once connected; idle connections close after
    /// `idle`.
    pub async fn connect(addr: &Multiaddr, idle: Duration) -> Self {
        let Some(Protocol::P2p(server)) = addr.iter().last() else {
            panic!("{addr} has no /p2p/")
        };
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        let mut control = swarm.behaviour().new_control();
        let incoming = control.accept(ProtocolVersion::V1_2_0.protocol()).unwrap();
        swarm.dial(addr.clone()).unwrap();
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => break,
                SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                _ => {}
            }
        }
        Self {
            server,
            swarm,
            control,
            incoming,
        }
    }
}

/// Drives a client swarm's events until the task is dropped; says why a connection closed.
pub async fn drive(mut swarm: libp2p::Swarm<libp2p_stream::Behaviour>) {
    loop {
        if let SwarmEvent::ConnectionClosed { cause, .. } = swarm.select_next_some().await {
            eprintln!("client: connection closed: {cause:?}");
        }
    }
}
