//! The Kubo RPC commands about the node and the network: `id`, `version`, `swarm/peers` and
//! `routing/findprovs`.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use cid::Cid;
use serde_json::json;

use super::{AGENT_VERSION, KuboError, Params, ndjson};
use crate::http::state::ApiState;

/// How long `routing/findprovs` walks the DHT at most.
const FINDPROVS_TIMEOUT: Duration = Duration::from_secs(30);

/// Most providers `routing/findprovs` returns (`num-providers` may ask for fewer).
const MAX_PROVIDERS: u64 = 100;

/// Kubo's routing query event type of a found provider (`routing.Provider`).
const EVENT_PROVIDER: u8 = 4;

/// `POST /api/v0/id`: `{"ID", "PublicKey", "Addresses", "AgentVersion", "Protocols"}` of this
/// node (the main peer, whose identity every replica shares). `PublicKey` is the base64 of the
/// protobuf public key (peer-ids.md § "Keys"), as Kubo gives it. An `arg` naming another peer
/// is refused: Hydrant keeps no peerstore to answer from.
pub(crate) async fn id(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let me = &state.info.peer_id;
    if let Some(other) = params.get("arg").filter(|p| *p != me.as_str()) {
        return Err(KuboError::Failed(format!(
            "Hydrant answers id only for itself ({me}), not for {other}"
        )));
    }
    let peer: libp2p::PeerId = me
        .parse()
        .map_err(|e| KuboError::internal("the node's own peer ID does not parse", e))?;
    // An Ed25519 peer ID inlines its public key (identity multihash of the protobuf key).
    let multihash = peer.as_ref();
    let public_key = (multihash.code() == 0x00)
        .then(|| base64::engine::general_purpose::STANDARD.encode(multihash.digest()));
    Ok(super::json(&json!({
        "ID": me,
        "PublicKey": public_key.unwrap_or_default(),
        "Addresses": state.info.swarm_addrs,
        "AgentVersion": AGENT_VERSION,
        "Protocols": [
            "/ipfs/bitswap/1.2.0",
            "/ipfs/bitswap/1.1.0",
            "/ipfs/bitswap/1.0.0",
            "/ipfs/bitswap",
            "/ipfs/id/1.0.0",
            "/ipfs/kad/1.0.0",
            "/ipfs/lan/kad/1.0.0",
            "/ipfs/ping/1.0.0",
        ],
    })))
}

/// `POST /api/v0/version`: `{"Version", "Commit", "Repo", "System", "Golang"}`, Hydrant's
/// version in Kubo's shape (`Golang` names the Rust build instead).
pub(crate) async fn version() -> Response {
    super::json(&json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": "hydrant",
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "none (Rust)",
    }))
}

/// `POST /api/v0/swarm/peers`: `{"Peers": [{"Addr", "Peer", "Latency", "Muxer", "Direction",
/// "Streams"}]}`, the peers connected to the main (Bitswap) peer, sorted by peer ID, each with
/// the remote address of its latest connection (`Peers` is `null` when there are none, as in
/// Kubo). Latency and streams are not tracked: empty.
pub(crate) async fn swarm_peers(State(state): State<ApiState>) -> Response {
    let mut peers: Vec<(libp2p::PeerId, libp2p::Multiaddr)> =
        crate::lock(&state.services.main_peers)
            .iter()
            .map(|(peer, addr)| (*peer, addr.clone()))
            .collect();
    peers.sort_by_key(|(peer, _)| *peer);
    let peers: Vec<_> = peers
        .into_iter()
        .map(|(peer, addr)| {
            json!({
                "Addr": addr.to_string(),
                "Peer": peer.to_string(),
                "Latency": "",
                "Muxer": "",
                "Direction": 0,
                "Streams": null,
            })
        })
        .collect();
    super::json(&json!({ "Peers": (!peers.is_empty()).then_some(peers) }))
}

/// `POST /api/v0/routing/findprovs` (`arg` CID, `num-providers` default 20): Kubo's routing
/// events, one per line, `{"Extra": "", "ID": "", "Responses": [{"ID", "Addrs"}], "Type": 4}`
/// per provider found: this node first when it holds the block, then what the DHT walk finds
/// (at most 30 s). Without the DHT (`dht.enabled = false`) only this node can be found.
pub(crate) async fn findprovs(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let arg = params.arg("key")?;
    let cid: Cid = arg
        .parse()
        .map_err(|e| KuboError::Client(format!("invalid CID {arg:?}: {e}")))?;
    let wanted = params.number("num-providers")?.unwrap_or(20);
    if wanted == 0 || wanted > MAX_PROVIDERS {
        return Err(KuboError::Client(format!(
            "num-providers must be between 1 and {MAX_PROVIDERS}"
        )));
    }
    let limit = usize::try_from(wanted).unwrap_or(20);
    let mut providers: Vec<(String, Vec<String>)> = Vec::new();
    if let Some(dht) = &state.dht {
        let key = cid.hash().to_bytes();
        match tokio::time::timeout(FINDPROVS_TIMEOUT, dht.get_providers(&key, limit)).await {
            Ok(Ok(found)) => providers.extend(found.into_iter().map(|p| {
                (
                    p.peer.to_string(),
                    p.addrs.iter().map(ToString::to_string).collect(),
                )
            })),
            Ok(Err(hydrant_dht::DhtError::NoPeers)) | Err(_) => {}
            Ok(Err(e)) => return Err(KuboError::internal("the DHT lookup failed", e)),
        }
    } else if hydrant_blocks::Blockstore::has(state.services.blockstore.as_ref(), &cid)
        .await
        .map_err(|e| KuboError::internal("the index failed", e))?
    {
        providers.push((state.info.peer_id.clone(), state.info.swarm_addrs.clone()));
    }
    providers.truncate(limit);
    Ok(ndjson(providers.into_iter().map(|(id, addrs)| {
        json!({
            "Extra": "",
            "ID": "",
            "Responses": [{ "ID": id, "Addrs": addrs }],
            "Type": EVENT_PROVIDER,
        })
    })))
}
