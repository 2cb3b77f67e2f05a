//! A Kubo RPC pub/sub client for the pub/sub tests, speaking the wire as `kubo-rpc-client`
//! does: multibase base64url topics and data, the data as a multipart file, NDJSON lines.
#![allow(dead_code)] // each test file uses part of it

use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// `bytes` as multibase base64url.
pub fn mb(bytes: &[u8]) -> String {
    format!("u{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Decodes a multibase base64url string.
pub fn unmb(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s.strip_prefix('u').expect("base64url multibase"))
        .expect("base64url")
}

/// One daemon's RPC API.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `POST /api/v0/<command>?<query>` with an empty body.
    pub async fn post(&self, command: &str, query: &[(&str, &str)]) -> reqwest::Response {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        self.http
            .post(format!("{}/api/v0/{command}?{query}", self.url))
            .send()
            .await
            .expect("request sent")
    }

    /// `command`'s JSON answer (status 200 asserted).
    pub async fn json(&self, command: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let response = self.post(command, query).await;
        assert_eq!(response.status(), 200, "{command}");
        response.json().await.expect("JSON")
    }

    /// `pubsub/pub` of `data` on `topic`, as kubo-rpc-client sends it.
    pub async fn publish(&self, topic: &str, data: &[u8]) -> reqwest::Response {
        let boundary = "hydrant-test-boundary-7d1f";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.http
            .post(format!(
                "{}/api/v0/pubsub/pub?arg={}",
                self.url,
                mb(topic.as_bytes())
            ))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `pubsub/sub` on `topic`: the response head is awaited (it must come before any
    /// message), then its lines.
    pub async fn subscribe(&self, topic: &str) -> Lines {
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            self.post("pubsub/sub", &[("arg", &mb(topic.as_bytes()))]),
        )
        .await
        .expect("pubsub/sub answers its head at once");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-chunked-output"], "1");
        Lines {
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// The peers `pubsub/peers` lists (for `topic` when given).
    pub async fn peers(&self, topic: Option<&str>) -> Vec<String> {
        let arg = topic.map(|t| mb(t.as_bytes()));
        let query: Vec<(&str, &str)> = arg.iter().map(|a| ("arg", a.as_str())).collect();
        let answer = self.json("pubsub/peers", &query).await;
        strings(&answer)
    }

    /// Polls `pubsub/peers?arg=topic` until `peer` is listed (at most 20 s).
    pub async fn wait_for_peer(&self, topic: &str, peer: &str) {
        for _ in 0..200 {
            if self.peers(Some(topic)).await.iter().any(|p| p == peer) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{peer} never showed up on {topic}");
    }
}

/// The `Strings` of a Kubo string list.
pub fn strings(answer: &serde_json::Value) -> Vec<String> {
    answer["Strings"]
        .as_array()
        .expect("Strings")
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// A message of `pubsub/sub`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub from: String,
    pub data: Vec<u8>,
    pub seqno: Vec<u8>,
    pub topics: Vec<String>,
}

/// The lines of a `pubsub/sub` answer.
pub struct Lines {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl Lines {
    /// The next message; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let v: serde_json::Value = serde_json::from_slice(&line).expect("JSON line");
                return Some(Received {
                    from: v["from"].as_str().unwrap().to_owned(),
                    data: unmb(v["data"].as_str().unwrap()),
                    seqno: unmb(v["seqno"].as_str().unwrap()),
                    topics: v["topicIDs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| String::from_utf8(unmb(t.as_str().unwrap())).unwrap())
                        .collect(),
                });
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next message within `secs` seconds (panics otherwise).
    pub async fn next_within(&mut self, secs: u64) -> Option<Received> {
        tokio::time::timeout(Duration::from_secs(secs), self.next())
            .await
            .expect("a message in time")
    }
}
