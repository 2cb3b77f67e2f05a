//! HTTP announcements (ipni.md, "Announcements", "HTTP"), sent as go-libipni's
//! `announce/httpsender` `Sender.Send` sends them, which index-provider's engine uses:
//! `PUT <indexer>/announce`, `Content-Type: application/octet-stream`, the body the DAG-CBOR
//! `message.Message` (`[Cid, Addrs, ExtraData]`, cbor-gen tuple encoding, no `OrigPeer`), each
//! address carrying the publisher's `/p2p/<peer ID>`. Success is 200 or 204.
//!
//! Announcing never blocks publishing: the publisher only replaces the latest head in a
//! `watch` channel; one task per indexer sends it, retrying with exponential back-off, and
//! skips to a newer head as soon as there is one.

use hydrant_car::cbor_head;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use tokio::sync::watch;

use crate::PublisherStats;

/// Path go-libipni appends to an indexer URL given without one (`DefaultAnnouncePath`).
pub const ANNOUNCE_PATH: &str = "/announce";

/// How announcements are retried.
#[derive(Debug, Clone)]
pub struct AnnounceConfig {
    /// Attempts per head and indexer, at least 1 (5).
    pub max_attempts: u32,
    /// Wait after the first failure (1 s); doubled after each further one.
    pub first_backoff: Duration,
    /// Longest wait between attempts (60 s).
    pub max_backoff: Duration,
    /// Time limit of one request (10 s).
    pub timeout: Duration,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The announce URL of an indexer given as `base`: `base` itself when it has a path, else
/// `base` + [`ANNOUNCE_PATH`] (go-libipni adds the path when the URL's is empty; a lone `/`
/// is treated as empty here too).
///
/// # Errors
/// The URL parser's message when `base` is not an `http` or `https` URL.
pub fn announce_url(base: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| e.to_string())?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(ANNOUNCE_PATH);
    }
    Ok(url)
}

/// The announce message as go-libipni's `Message.MarshalCBOR` writes it: a CBOR array of 3:
/// the CID (tag 42, bytes `00 ++ CID`), the addresses (an array of byte strings, each a binary
/// multiaddr) and the extra data (an empty byte string).
pub fn encode_message(cid: &Cid, addrs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0x83];
    out.extend_from_slice(&[0xd8, 0x2a]);
    let cid = cid.to_bytes();
    cbor_head(2, cid.len() as u64 + 1, &mut out);
    out.push(0);
    out.extend_from_slice(&cid);
    cbor_head(4, addrs.len() as u64, &mut out);
    for addr in addrs {
        cbor_head(2, addr.len() as u64, &mut out);
        out.extend_from_slice(addr);
    }
    cbor_head(2, 0, &mut out);
    out
}

/// Sends every new head in `heads` to `indexer` (its announce URL) until `stop`, with the
/// publisher addresses `addrs` (binary multiaddrs ending in `/p2p/<peer ID>`).
pub async fn announce_to(
    indexer: reqwest::Url,
    addrs: Arc<Vec<Vec<u8>>>,
    mut heads: watch::Receiver<Option<Cid>>,
    config: AnnounceConfig,
    stats: Arc<PublisherStats>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "no HTTP client for IPNI announcements");
            return;
        }
    };
    let mut pending = *heads.borrow_and_update();
    loop {
        let Some(cid) = pending.take() else {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = heads.changed() => {
                    if changed.is_err() { return; }
                    pending = *heads.borrow_and_update();
                    continue;
                }
            }
        };
        let body = encode_message(&cid, &addrs);
        let mut backoff = config.first_backoff;
        for attempt in 1..=config.max_attempts.max(1) {
            stats.announce_attempt();
            match send(&client, &indexer, body.clone()).await {
                Ok(()) => {
                    tracing::debug!(%indexer, head = %cid, "IPNI head announced");
                    break;
                }
                Err(e) => {
                    stats.announce_failure();
                    tracing::info!(%indexer, head = %cid, attempt, error = %e, "IPNI announcement failed");
                }
            }
            if attempt == config.max_attempts {
                tracing::warn!(%indexer, head = %cid, "IPNI announcement given up; the next head is announced");
                break;
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = heads.changed() => {
                    if changed.is_err() { return; }
                    pending = *heads.borrow_and_update();
                    break; // a newer head supersedes this one
                }
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(config.max_backoff);
        }
    }
}

async fn send(client: &reqwest::Client, url: &reqwest::Url, body: Vec<u8>) -> Result<(), String> {
    let response = client
        .put(url.clone())
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status == reqwest::StatusCode::OK || status == reqwest::StatusCode::NO_CONTENT {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(200).collect();
    Err(format!("{status}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_default_path_only_when_they_have_none() {
        assert_eq!(
            announce_url("http://127.0.0.1:3001").unwrap().as_str(),
            "http://127.0.0.1:3001/announce"
        );
        assert_eq!(
            announce_url("http://idx.example/").unwrap().as_str(),
            "http://idx.example/announce"
        );
        assert_eq!(
            announce_url("https://idx.example/ingest/announce")
                .unwrap()
                .as_str(),
            "https://idx.example/ingest/announce"
        );
        assert!(announce_url("ftp://idx.example").is_err());
        assert!(announce_url("not a url").is_err());
    }

    #[test]
    fn message_matches_cbor_gen() {
        // A go-libipni Message{Cid: bafkqaaa (identity, empty), Addrs: [[1,2]], ExtraData: nil}
        // marshals to 83 d82a 45 00 01 55 00 00 81 42 0102 40.
        let cid: Cid = "bafkqaaa".parse().unwrap();
        let encoded = encode_message(&cid, &[vec![1, 2]]);
        assert_eq!(
            encoded,
            [
                0x83, 0xd8, 0x2a, 0x45, 0x00, 0x01, 0x55, 0x00, 0x00, 0x81, 0x42, 1, 2, 0x40
            ]
        );
        let mut long = Vec::new();
        cbor_head(2, 300, &mut long);
        assert_eq!(long, [0x59, 0x01, 0x2c]);
    }
}
