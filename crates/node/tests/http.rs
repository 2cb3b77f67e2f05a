//! HTTP/1.1 keep-alive on both listeners of a real daemon: one TCP connection each, many
//! requests one after the other (every status the listener gives, bodies with Content-Length
//! and chunked), each response read whole before the next request is sent. Also: every
//! response carries `x-request-id`, every error body carries the same ID, and the API token
//! (401 with `WWW-Authenticate: Bearer`, then 200).

mod common;

use std::time::Duration;

use hydrant_testkit::fixture;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A root of go-car/sample-v1.car (a DAG-CBOR block with links).
const ROOT: &str = "bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy";
/// A raw-leaf CID whose block is in no fixture.
const ABSENT: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
const TOKEN: &str = "keep-alive-test-token-0123456789";

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A hand-written HTTP/1.1 client on one TCP connection.
struct Connection {
    stream: BufReader<TcpStream>,
    sent: usize,
}

impl Connection {
    async fn open(base_url: &str) -> Self {
        let addr = base_url.trim_start_matches("http://");
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            stream: BufReader::new(stream),
            sent: 0,
        }
    }

    /// Sends one request and reads its whole response (Content-Length or chunked; no body for
    /// HEAD). Panics when the server closes the connection or answers without a length.
    async fn request(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let n = self.sent;
        self.sent += 1;
        self.stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("request {n} ({method} {target}): write failed: {e}"));
        let answer = tokio::time::timeout(Duration::from_secs(30), self.read_answer(method))
            .await
            .unwrap_or_else(|_| panic!("request {n} ({method} {target}): no answer in 30 s"));
        assert_ne!(
            answer.header("connection"),
            Some("close"),
            "request {n} ({method} {target}): the server asked to close the connection"
        );
        answer
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stream.read_line(&mut line).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    async fn read_answer(&mut self, method: &str) -> Answer {
        let status_line = self.line().await;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if method == "HEAD" || status == 204 || status == 304 {
            return answer;
        }
        if answer
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let size_line = self.line().await;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .expect("a chunk size");
                if size == 0 {
                    // Trailers, then the blank line.
                    while !self.line().await.is_empty() {}
                    break;
                }
                let start = answer.body.len();
                answer.body.resize(start + size, 0);
                self.stream
                    .read_exact(&mut answer.body[start..])
                    .await
                    .expect("chunk data");
                assert_eq!(self.line().await, "", "CRLF after chunk data");
            }
        } else {
            let length: usize = answer
                .header("content-length")
                .unwrap_or_else(|| panic!("no Content-Length nor chunked: {answer:?}"))
                .parse()
                .unwrap();
            answer.body.resize(length, 0);
            self.stream
                .read_exact(&mut answer.body)
                .await
                .expect("body");
        }
        answer
    }
}

/// The response's request ID, checked for shape; for an error, also found in its body.
fn request_id(answer: &Answer, what: &str) -> String {
    let id = answer
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no x-request-id: {answer:?}"))
        .to_owned();
    assert!(
        !id.is_empty() && id.len() <= 64,
        "{what}: request id {id:?}"
    );
    if answer.status >= 400 {
        let body = answer.text();
        let in_body = match answer.header("content-type") {
            Some(t) if t.starts_with("application/json") => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["request_id"] == id.as_str()
            }
            _ => body.ends_with(&format!("request-id: {id}\n")),
        };
        assert!(in_body, "{what}: request id {id} not in the body {body:?}");
    }
    id
}

async fn ingest(api_url: &str, file: &str, token: Option<&str>) {
    let mut put = reqwest::Client::new()
        .put(format!("{api_url}/api/v1/cars"))
        .body(fixture(file));
    if let Some(token) = token {
        put = put.bearer_auth(token);
    }
    let answer = put.send().await.unwrap();
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
}

async fn wait_ready(api_url: &str) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{api_url}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_serves_many_requests_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (info, stop, task) = common::start_daemon(&dir.path().join("repo"), 0, |_| {}).await;
    wait_ready(&info.api_url).await;
    ingest(&info.api_url, "go-car/sample-v1.car", None).await;

    let mut conn = Connection::open(&info.gateway_url).await;
    let mut ids = std::collections::HashSet::new();
    for round in 0..4 {
        let block = conn
            .request("GET", &format!("/ipfs/{ROOT}?format=raw"), &[])
            .await;
        assert_eq!(block.status, 200, "{}", block.text());
        assert_eq!(
            block.header("content-type"),
            Some("application/vnd.ipld.raw")
        );
        assert!(!block.body.is_empty());
        ids.insert(request_id(&block, "raw block"));

        let car = conn
            .request(
                "GET",
                &format!("/ipfs/{ROOT}"),
                &[("Accept", "application/vnd.ipld.car")],
            )
            .await;
        assert_eq!(car.status, 200, "{}", car.text());
        assert!(
            car.header("content-type")
                .is_some_and(|t| t.starts_with("application/vnd.ipld.car")),
            "{car:?}"
        );
        assert_eq!(car.header("transfer-encoding"), Some("chunked"), "streamed");
        assert!(car.body.len() > block.body.len(), "a CAR of the whole DAG");
        ids.insert(request_id(&car, "CAR"));

        let client_id = format!("client-id.{round}");
        let absent = conn
            .request(
                "GET",
                &format!("/ipfs/{ABSENT}?format=raw"),
                &[("x-request-id", &client_id)],
            )
            .await;
        assert_eq!(absent.status, 404, "{}", absent.text());
        assert_eq!(request_id(&absent, "absent block"), client_id, "echoed");

        let malformed = conn
            .request(
                "GET",
                "/ipfs/not-a-cid?format=raw",
                &[("x-request-id", "bad id with spaces")],
            )
            .await;
        assert_eq!(malformed.status, 400, "{}", malformed.text());
        let id = request_id(&malformed, "malformed CID");
        assert_ne!(id, "bad id with spaces", "an unsafe client ID is replaced");
        assert!(malformed.text().starts_with("invalid CID\n"));
        ids.insert(id);

        let head = conn
            .request("HEAD", &format!("/ipfs/{ROOT}?format=raw"), &[])
            .await;
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(block.body.len().to_string().as_str())
        );
        ids.insert(request_id(&head, "HEAD"));

        let providers = conn
            .request("GET", &format!("/routing/v1/providers/{ROOT}"), &[])
            .await;
        assert_eq!(providers.status, 200, "{}", providers.text());
        let json: serde_json::Value = serde_json::from_slice(&providers.body).unwrap();
        assert_eq!(
            json["Providers"][0]["ID"], info.peer_id,
            "this node provides its blocks: {json}"
        );
        ids.insert(request_id(&providers, "routing"));
    }
    assert_eq!(conn.sent, 24);
    assert_eq!(ids.len(), 4 * 5, "fresh IDs are unique");

    let metrics = reqwest::get(format!("{}/metrics", info.api_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "hydrant_gateway_requests_total{type=\"block\",outcome=\"found\"} 8",
        "hydrant_gateway_requests_total{type=\"car\",outcome=\"found\"} 4",
        "hydrant_gateway_requests_total{type=\"block\",outcome=\"not_found\"} 4",
        "hydrant_gateway_requests_total{type=\"block\",outcome=\"bad_request\"} 4",
        "hydrant_gateway_requests_total{type=\"other\",outcome=\"found\"} 4",
        "hydrant_gateway_request_duration_seconds_count{type=\"block\"} 16",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_many_requests_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (info, stop, task) = common::start_daemon(&dir.path().join("repo"), 0, |_| {}).await;
    wait_ready(&info.api_url).await;

    let mut conn = Connection::open(&info.api_url).await;
    for _ in 0..3 {
        let health = conn.request("GET", "/healthz", &[]).await;
        assert_eq!((health.status, health.text().as_str()), (200, "ok"));
        request_id(&health, "healthz");

        let ready = conn.request("GET", "/readyz", &[]).await;
        assert_eq!(ready.status, 200, "{}", ready.text());
        request_id(&ready, "readyz");

        let id = conn.request("GET", "/api/v1/id", &[]).await;
        assert_eq!(id.status, 200);
        let json: serde_json::Value = serde_json::from_slice(&id.body).unwrap();
        assert_eq!(json["peer_id"], info.peer_id);
        request_id(&id, "id");

        let metrics = conn.request("GET", "/metrics", &[]).await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.text().contains("hydrant_api_requests_total"));
        request_id(&metrics, "metrics");

        let unknown = conn.request("GET", "/api/v1/nothing-here", &[]).await;
        assert_eq!(unknown.status, 404);
        request_id(&unknown, "unknown route");
    }
    // A key that names no object is the client's mistake: 400 with the reason, not 500.
    for key in ["", "%2F"] {
        let refused = conn
            .request("POST", &format!("/api/v1/cars/index?key={key}"), &[])
            .await;
        assert_eq!(refused.status, 400, "key={key:?}: {}", refused.text());
        assert!(
            refused.text().contains("not an object key"),
            "{}",
            refused.text()
        );
    }
    let metrics = conn.request("GET", "/metrics", &[]).await;
    let text = metrics.text();
    for line in [
        "hydrant_api_requests_total{route=\"/healthz\",outcome=\"found\"} 3",
        "hydrant_api_requests_total{route=\"unmatched\",outcome=\"not_found\"} 3",
        "hydrant_api_request_duration_seconds_count{route=\"/api/v1/id\"} 3",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_is_required_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let (info, stop, task) = common::start_daemon(&repo_dir, 0, |repo| {
        std::fs::write(repo.dir.join("api-token"), format!("{TOKEN}\n")).unwrap();
        repo.config.api.token_file = "api-token".into();
        // On disk too, for the CLI's way in below.
        let file = repo.dir.join("config.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("token_file = \"\"", "token_file = \"api-token\""),
        )
        .unwrap();
    })
    .await;
    wait_ready(&info.api_url).await;

    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let mut conn = Connection::open(&info.api_url).await;
    for _ in 0..2 {
        let refused = conn.request("GET", "/api/v1/id", &[]).await;
        assert_eq!(refused.status, 401, "{}", refused.text());
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        request_id(&refused, "no token");

        let wrong = conn
            .request(
                "GET",
                "/api/v1/id",
                &[("Authorization", "Bearer keep-alive-test-token-012345678X")],
            )
            .await;
        assert_eq!(wrong.status, 401);
        request_id(&wrong, "wrong token");

        let accepted = conn.request("GET", "/api/v1/id", &auth).await;
        assert_eq!(accepted.status, 200, "{}", accepted.text());

        let metrics = conn.request("GET", "/metrics", &[]).await;
        assert_eq!(metrics.status, 401, "/metrics needs the token too");
        let metrics = conn.request("GET", "/metrics", &auth).await;
        assert_eq!(metrics.status, 200);

        for open in ["/healthz", "/readyz"] {
            let answer = conn.request("GET", open, &[]).await;
            assert_eq!(answer.status, 200, "{open} needs no token");
        }
        let unknown = conn.request("GET", "/api/v1/nothing-here", &[]).await;
        assert_eq!(unknown.status, 401, "unknown routes are not revealed");
        let unknown = conn.request("GET", "/api/v1/nothing-here", &auth).await;
        assert_eq!(unknown.status, 404);
    }
    assert_eq!(conn.sent, 18);

    // The CLI's way in: the token from the repository.
    let repo = hydrant_node::Repo::open(&repo_dir).unwrap();
    let token = hydrant_node::ApiToken::load(&repo).unwrap().unwrap();
    assert_eq!(token.authorization(), bearer.as_str());
    ingest(&info.api_url, "ipld/carv1-basic.car", Some(TOKEN)).await;

    let _ = stop.send(());
    task.await.unwrap();
}

/// HEAD answers carry the headers GET would (issue 14, item 3): the same status, type and
/// length where GET knows it (raw blocks, errors), no length where GET streams (CARs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_carry_the_headers_of_get() {
    let dir = tempfile::tempdir().unwrap();
    let (info, stop, task) = common::start_daemon(&dir.path().join("repo"), 0, |_| {}).await;
    wait_ready(&info.api_url).await;
    ingest(&info.api_url, "go-car/sample-v1.car", None).await;

    let mut conn = Connection::open(&info.gateway_url).await;
    for (what, target) in [
        ("raw block", format!("/ipfs/{ROOT}?format=raw")),
        ("CAR", format!("/ipfs/{ROOT}?format=car")),
        ("absent block", format!("/ipfs/{ABSENT}?format=raw")),
        ("invalid CID", "/ipfs/not-a-cid?format=raw".to_owned()),
    ] {
        let id = [("x-request-id", "same-id")];
        let get = conn.request("GET", &target, &id).await;
        let head = conn.request("HEAD", &target, &id).await;
        assert!(head.body.is_empty(), "{what}: HEAD has no body");
        assert_eq!(head.status, get.status, "{what}");
        // Transfer-Encoding is framing of a body HEAD does not send: hyper leaves it out, as
        // RFC 9110 § 9.3.2 allows; the length must not be claimed (a CAR's is not known).
        for name in ["content-type", "content-length", "etag", "x-ipfs-roots"] {
            assert_eq!(head.header(name), get.header(name), "{what}: {name}");
        }
        if let Some(length) = get.header("content-length") {
            assert_eq!(
                length,
                get.body.len().to_string(),
                "{what}: GET's own length"
            );
        }
    }
    let _ = stop.send(());
    task.await.unwrap();
}

/// An upload that stops sending is ended after `api.upload_idle_timeout_secs` with 408, and
/// its staging object is removed (issue 14, item 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_ended_and_leaves_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let (info, stop, task) = common::start_daemon(&repo_dir, 0, |repo| {
        repo.config.api.upload_idle_timeout_secs = 1;
    })
    .await;
    wait_ready(&info.api_url).await;

    let car = hydrant_testkit::fixture("go-car/sample-v1.car");
    let addr = info.api_url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/cars HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        car.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&car[..car.len() / 2]).await.unwrap(); // then nothing more
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer to the stalled upload");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let staged: Vec<_> = hydrant_testkit::files_under(&repo_dir)
        .into_iter()
        .filter(|(path, _)| path.contains("staging") || path.contains(".car"))
        .collect();
    assert!(staged.is_empty(), "left behind: {staged:?}");
    let _ = stop.send(());
    task.await.unwrap();
}
