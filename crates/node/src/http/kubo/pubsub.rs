//! Kubo's RPC pub/sub calls (`core/commands/pubsub.go`) and `swarm/connect`, answered as Kubo
//! answers them:
//!
//! - Topics in `arg` and the `data`, `seqno` and `topicIDs` of messages are multibase
//!   base64url (`u` prefix, no padding); `from` is the author's peer ID as text. A topic in
//!   another base is refused as Kubo refuses it (`URL arg must be base64url encoded`).
//! - `pubsub/pub?arg=<topic>`: the data is the first file part of a `multipart/form-data`
//!   body, as `kubo-rpc-client` sends it; empty answer.
//! - `pubsub/sub?arg=<topic>`: a stream of `{"from","data","seqno","topicIDs"}` lines
//!   (`X-Chunked-Output: 1`); the status and headers go out at once, before the first
//!   message (Kubo flushes them; its Go client waits for them). A subscriber whose queue
//!   (`pubsub.subscriber_queue_len`) fills, because it stopped reading, is dropped: its
//!   stream ends, nothing more is buffered for it.
//! - `pubsub/ls`: `{"Strings": [<topic>...]}`; `pubsub/peers[?arg=<topic>]`:
//!   `{"Strings": [<peer ID>...]}`, sorted.
//! - With `[pubsub] enabled = false` every call answers Kubo's error for a node started
//!   without `--enable-pubsub-experiment` (500, `Code` 0).

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;

use super::{KuboError, Params, json, json_line};
use crate::http::state::ApiState;
use crate::p2p::pubsub::{Ended, PubSub, PubSubError, PubSubMessage};

/// Kubo's answer when pub/sub is off (`core/coreapi/pubsub.go`).
const NOT_ENABLED: &str = "experimental pubsub feature not enabled, run daemon with \
    --enable-pubsub-experiment to use (Hydrant: set [pubsub] enabled = true)";

/// One message of `pubsub/sub`, Kubo's `pubsubMessage`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    from: String,
    data: String,
    seqno: String,
    #[serde(rename = "topicIDs")]
    topic_ids: Vec<String>,
}

/// Kubo's `stringList`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Strings {
    strings: Vec<String>,
}

/// `bytes` as multibase base64url (`u` + unpadded base64url), as Kubo encodes them.
pub fn multibase(bytes: &[u8]) -> String {
    format!("u{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Decodes a multibase `arg` that must be base64url (`u`), as Kubo's `urlArgsDecoder`.
///
/// # Errors
/// Kubo's messages: `URL arg must be multibase encoded: ...` for an unknown base or bad
/// characters, `URL arg must be base64url encoded` for another base.
pub fn decode_arg(arg: &str) -> Result<Vec<u8>, String> {
    let mut chars = arg.chars();
    match chars.next() {
        Some('u') => URL_SAFE_NO_PAD
            .decode(chars.as_str().trim_end_matches('='))
            .map_err(|e| format!("URL arg must be multibase encoded: {e}")),
        Some('U' | 'm' | 'M' | 'b' | 'B' | 'z' | 'f' | 'F' | 'k' | 'K' | 'c' | 'C' | 'v' | 'V') => {
            Err("URL arg must be base64url encoded".into())
        }
        _ => Err("URL arg must be multibase encoded: selected encoding not supported".into()),
    }
}

/// The pub/sub service, or Kubo's "not enabled" error.
fn service(state: &ApiState) -> Result<&PubSub, KuboError> {
    state
        .pubsub
        .as_ref()
        .ok_or_else(|| KuboError::Failed(NOT_ENABLED.into()))
}

/// The topic in `arg`, decoded.
fn topic(params: &Params) -> Result<String, KuboError> {
    let bytes = decode_arg(params.arg("topic")?).map_err(KuboError::Failed)?;
    String::from_utf8(bytes).map_err(|_| {
        KuboError::Failed("the topic is not UTF-8 (Hydrant needs UTF-8 topic names)".into())
    })
}

fn refused(e: PubSubError) -> KuboError {
    KuboError::Failed(e.to_string())
}

/// `POST /api/v0/pubsub/pub?arg=<topic>` with the data as a multipart file.
pub(crate) async fn publish(
    State(state): State<ApiState>,
    params: Params,
    request: Request,
) -> Result<Response, KuboError> {
    let pubsub = service(&state)?.clone();
    let topic = topic(&params)?;
    let mut multipart = super::add::multipart(&state, request)?;
    let limit = pubsub.max_payload_bytes();
    let mut field = multipart
        .next_field()
        .await
        .map_err(|e| super::add::multipart_error(e, state.max_upload_bytes))?
        .ok_or_else(|| KuboError::Client("argument \"data\" is required".into()))?;
    let mut data = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| super::add::multipart_error(e, state.max_upload_bytes))?
    {
        if data.len() + chunk.len() > limit {
            return Err(refused(PubSubError::TooLarge {
                size: data.len() + chunk.len(),
                limit,
            }));
        }
        data.extend_from_slice(&chunk);
    }
    pubsub.publish(&topic, Bytes::from(data)).map_err(refused)?;
    Ok(().into_response())
}

/// `POST /api/v0/pubsub/sub?arg=<topic>`: the topic's messages as NDJSON until the client
/// goes away or is dropped for not reading.
pub(crate) async fn subscribe(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let pubsub = service(&state)?;
    let topic = topic(&params)?;
    let subscription = pubsub.subscribe(&topic).map_err(refused)?;
    let lines = futures::stream::unfold(subscription, |mut sub| async move {
        match sub.recv().await {
            Some(message) => Some((Ok::<_, Infallible>(line(&message)), sub)),
            None => {
                if sub.ended() == Some(Ended::SlowSubscriber) {
                    tracing::debug!("pubsub/sub stream ended: the subscriber did not read");
                }
                None
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-chunked-output"), "1"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// One NDJSON line for `message`.
fn line(message: &PubSubMessage) -> Bytes {
    Bytes::from(json_line(&Message {
        from: message.from.to_string(),
        data: multibase(&message.data),
        seqno: multibase(&message.seqno),
        topic_ids: vec![multibase(message.topic.as_bytes())],
    }))
}

/// `POST /api/v0/pubsub/ls`: the topics with local subscribers.
pub(crate) async fn ls(State(state): State<ApiState>) -> Result<Response, KuboError> {
    let strings = service(&state)?
        .topics()
        .iter()
        .map(|t| multibase(t.as_bytes()))
        .collect();
    Ok(json(&Strings { strings }))
}

/// `POST /api/v0/pubsub/peers[?arg=<topic>]`: gossipsub peers, or those on the topic.
pub(crate) async fn peers(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let pubsub = service(&state)?;
    let topic = match params.get("arg") {
        Some(_) => Some(topic(&params)?),
        None => None,
    };
    let strings = pubsub
        .peers(topic.as_deref())
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(json(&Strings { strings }))
}

/// `POST /api/v0/swarm/connect?arg=<multiaddr>/p2p/<peer>`: dials the peer from the main
/// swarm; `{"Strings": ["connect <peer> success"]}` as Kubo.
pub(crate) async fn swarm_connect(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    use hydrant_dht::Dialer as _;
    let dialer = state
        .dialer
        .as_ref()
        .ok_or_else(|| KuboError::Failed("this node has no swarm to dial from".into()))?;
    let mut strings = Vec::new();
    for arg in params.all("arg") {
        let addr: libp2p::Multiaddr = arg
            .parse()
            .map_err(|e| KuboError::Client(format!("invalid multiaddr {arg:?}: {e}")))?;
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(KuboError::Client(format!(
                "{arg:?}: the address must end with /p2p/<peer ID>"
            )));
        };
        let dial = dialer.dial(peer, vec![addr.clone()]);
        tokio::time::timeout(std::time::Duration::from_secs(30), dial)
            .await
            .map_err(|_| KuboError::Failed(format!("connect {peer} failure: timed out")))?
            .map_err(|e| KuboError::Failed(format!("connect {peer} failure: {e}")))?;
        strings.push(format!("connect {peer} success"));
    }
    if strings.is_empty() {
        return Err(KuboError::Client("argument \"address\" is required".into()));
    }
    Ok(json(&Strings { strings }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_base64url_multibase() {
        assert_eq!(multibase(b"hello topic"), "uaGVsbG8gdG9waWM");
        assert_eq!(decode_arg("uaGVsbG8gdG9waWM").unwrap(), b"hello topic");
        assert_eq!(decode_arg("uaGVsbG8gdG9waWM=").unwrap(), b"hello topic");
        assert_eq!(decode_arg("u_-8").unwrap(), [0xff, 0xef]);
        assert_eq!(
            decode_arg("mAAA").unwrap_err(),
            "URL arg must be base64url encoded"
        );
        assert!(
            decode_arg("u+/8")
                .unwrap_err()
                .contains("multibase encoded")
        );
        assert!(decode_arg("").unwrap_err().contains("multibase encoded"));
        assert!(decode_arg("plain").unwrap_err().contains("not supported"));
    }
}
