//! Helpers shared by the routing server tests.

#![allow(dead_code)]

use libp2p::PeerId;
use libp2p::identity::Keypair;

/// The peer ID of the Ed25519 key with seed `[seed; 32]`.
pub fn peer(seed: u8) -> PeerId {
    key(seed).public().to_peer_id()
}

/// The Ed25519 key with seed `[seed; 32]`.
pub fn key(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).unwrap()
}

/// Serves `app` on a loopback port; returns `http://127.0.0.1:<port>`.
pub async fn serve_app(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The value of header `name`, which must be there.
pub fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}
