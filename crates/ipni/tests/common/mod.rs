//! Fixture loading shared by the integration tests.
#![allow(dead_code)]

use base64::Engine as _;
use libp2p_identity::Keypair;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

pub fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A peer-N.json fixture: its peer ID string and keypair (libp2p protobuf private key; RSA
/// keys hold PKCS#1 DER, which `Keypair::from_protobuf_encoding` may refuse, so they are
/// unwrapped by hand).
pub fn peer(name: &str) -> (String, Keypair) {
    let v = json(name);
    let id = v["id"].as_str().unwrap().to_owned();
    let proto = b64(v["privKey"].as_str().unwrap());
    let key = Keypair::from_protobuf_encoding(&proto).unwrap_or_else(|_| {
        // PrivateKey { Type = 1 (varint), Data = 2 (bytes) } with Type = RSA (0).
        assert_eq!(&proto[..2], [0x08, 0x00], "an RSA key");
        assert_eq!(proto[2], 0x12);
        let (len, rest) = unsigned_varint::decode::usize(&proto[3..]).unwrap();
        let mut der = rest[..len].to_vec();
        libp2p_identity::rsa::Keypair::try_decode_pkcs1(&mut der)
            .unwrap()
            .into()
    });
    assert_eq!(key.public().to_peer_id().to_base58(), id);
    assert_eq!(
        key.public().encode_protobuf(),
        b64(v["pubKey"].as_str().unwrap())
    );
    (id, key)
}
