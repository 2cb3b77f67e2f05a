//! Parsers for the `{cid}` and `{peer-id}` path parameters.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "Common Data Types", § "`GET
//! /routing/v1/providers/{cid}`" (Path Parameters) and § "`GET /routing/v1/peers/{peer-id}`"
//! (Path Parameters); the peer ID string forms are those of the libp2p peer-ids spec
//! § "String representation".

use cid::Cid;
use libp2p::PeerId;

/// Multicodec of `libp2p-key`, the codec of a peer ID written as a CIDv1.
pub const LIBP2P_KEY_CODEC: u64 = 0x72;

/// Longest `{cid}` or `{peer-id}` accepted, in bytes (a CID with a 64-byte digest in
/// base2 is under 600 characters; anything longer is not worth decoding).
pub const MAX_ID_LEN: usize = 1024;

/// Why a path parameter is not a CID or peer ID. The text is sent as the 422 body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Longer than [`MAX_ID_LEN`].
    #[error("identifier is {0} bytes long, the limit is {MAX_ID_LEN}")]
    TooLong(usize),
    /// Empty.
    #[error("identifier is empty")]
    Empty,
    /// Not a CID (bad multibase, varint, version or multihash).
    #[error("not a valid CID: {0}")]
    InvalidCid(String),
    /// A CID whose codec is not `libp2p-key`.
    #[error("CID codec is 0x{0:x}, a peer ID CID must use libp2p-key (0x72)")]
    NotLibp2pKey(u64),
    /// A CIDv0 given where a peer ID CID is expected.
    #[error("a peer ID CID must be CIDv1")]
    NotCidV1,
    /// A base58btc string that is not a peer ID multihash (identity up to 42 bytes, or
    /// sha2-256).
    #[error("not a valid peer ID: {0}")]
    InvalidPeerId(String),
}

fn check_len(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    Ok(())
}

/// Parses the `{cid}` path parameter: a CIDv1 in any multibase, or a CIDv0.
///
/// Errors: [`IdError::Empty`], [`IdError::TooLong`], [`IdError::InvalidCid`].
pub fn parse_cid(s: &str) -> Result<Cid, IdError> {
    check_len(s)?;
    Cid::try_from(s).map_err(|e| IdError::InvalidCid(e.to_string()))
}

/// Parses a peer ID in either string form: a bare base58btc multihash (starts with `1` or
/// `Qm`), or a CIDv1 with the `libp2p-key` codec in any multibase (e.g. base36 `k51…`,
/// base32 `bafz…`).
///
/// Errors: [`IdError::Empty`], [`IdError::TooLong`], [`IdError::InvalidPeerId`] for a bad
/// base58 form, [`IdError::InvalidCid`] / [`IdError::NotCidV1`] /
/// [`IdError::NotLibp2pKey`] for a bad CID form.
pub fn parse_peer_id(s: &str) -> Result<PeerId, IdError> {
    check_len(s)?;
    if s.starts_with('1') || s.starts_with("Qm") {
        return s
            .parse::<PeerId>()
            .map_err(|e| IdError::InvalidPeerId(e.to_string()));
    }
    let cid = Cid::try_from(s).map_err(|e| IdError::InvalidCid(e.to_string()))?;
    if cid.version() != cid::Version::V1 {
        return Err(IdError::NotCidV1);
    }
    if cid.codec() != LIBP2P_KEY_CODEC {
        return Err(IdError::NotLibp2pKey(cid.codec()));
    }
    PeerId::from_bytes(&cid.hash().to_bytes()).map_err(|e| IdError::InvalidPeerId(e.to_string()))
}

/// Parses the `{key}` of `GET /routing/v1/dht/closest/peers/{key}` (http-routing-v1.md
/// § "DHT Routing API", Path Parameters) into the DHT key it names: multihash bytes. A CID
/// (any version and codec; a `libp2p-key` CIDv1 is a peer ID, an arbitrary multihash comes
/// wrapped in a `raw` CIDv1) gives its multihash; a base58btc peer ID (`12D3Koo…`,
/// `Qm…`, the latter also a CIDv0 with the same multihash) gives its own bytes.
///
/// Errors: as [`parse_cid`] ([`IdError::Empty`], [`IdError::TooLong`],
/// [`IdError::InvalidCid`]), and [`IdError::InvalidPeerId`] for a bad `1…` peer ID.
pub fn parse_dht_key(s: &str) -> Result<Vec<u8>, IdError> {
    check_len(s)?;
    if s.starts_with('1') {
        return parse_peer_id(s).map(|p| p.to_bytes());
    }
    parse_cid(s).map(|c| c.hash().to_bytes())
}

/// The CIDv1 (`libp2p-key`, base32 when displayed) form of a peer ID.
pub fn peer_id_to_cid(peer: &PeerId) -> Cid {
    let mh = cid::multihash::Multihash::from_bytes(&peer.to_bytes())
        .expect("a PeerId is always a valid multihash");
    Cid::new_v1(LIBP2P_KEY_CODEC, mh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cid::multibase::Base;
    use libp2p::identity::Keypair;
    use proptest::prelude::*;

    fn ed_peer(seed: u8) -> PeerId {
        Keypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    #[test]
    fn peer_id_all_forms_parse_to_the_same_peer() {
        let p = ed_peer(7);
        let cid = peer_id_to_cid(&p);
        for s in [
            p.to_base58(),
            cid.to_string(),
            cid.to_string_of_base(Base::Base36Lower).unwrap(),
            cid.to_string_of_base(Base::Base58Btc).unwrap(),
            cid.to_string_of_base(Base::Base64Url).unwrap(),
        ] {
            assert_eq!(parse_peer_id(&s), Ok(p), "{s}");
        }
    }

    #[test]
    fn legacy_qm_peer_id_parses() {
        // A sha2-256 (RSA-style) peer ID.
        let mh = cid::multihash::Multihash::<64>::wrap(0x12, &[9u8; 32]).unwrap();
        let s = bs58_of(&mh.to_bytes());
        assert!(s.starts_with("Qm"));
        assert_eq!(parse_peer_id(&s).unwrap().to_bytes(), mh.to_bytes());
    }

    fn bs58_of(b: &[u8]) -> String {
        cid::multibase::encode(Base::Base58Btc, b)[1..].to_string()
    }

    #[test]
    fn peer_id_errors_say_what_is_wrong() {
        let raw = Cid::new_v1(
            0x55,
            cid::multihash::Multihash::wrap(0x12, &[1; 32]).unwrap(),
        );
        assert_eq!(
            parse_peer_id(&raw.to_string()),
            Err(IdError::NotLibp2pKey(0x55))
        );
        assert_eq!(parse_peer_id(""), Err(IdError::Empty));
        let r = parse_peer_id("12D3KooW0OIl");
        assert!(matches!(r, Err(IdError::InvalidPeerId(_))), "{r:?}");
        assert!(matches!(
            parse_peer_id("bafy!!"),
            Err(IdError::InvalidCid(_))
        ));
        let long = "b".repeat(MAX_ID_LEN + 1);
        assert_eq!(parse_peer_id(&long), Err(IdError::TooLong(MAX_ID_LEN + 1)));
        assert_eq!(parse_cid(&long), Err(IdError::TooLong(MAX_ID_LEN + 1)));
    }

    #[test]
    fn cid_v0_and_v1_parse() {
        let v1 = Cid::new_v1(
            0x55,
            cid::multihash::Multihash::wrap(0x12, &[1; 32]).unwrap(),
        );
        assert_eq!(parse_cid(&v1.to_string()), Ok(v1));
        let v0 = Cid::new_v0(cid::multihash::Multihash::wrap(0x12, &[1; 32]).unwrap()).unwrap();
        assert_eq!(parse_cid(&v0.to_string()), Ok(v0));
        assert!(matches!(
            parse_cid("not-a-cid"),
            Err(IdError::InvalidCid(_))
        ));
    }

    #[test]
    fn dht_key_is_the_multihash_of_any_form() {
        let p = ed_peer(9);
        let cid = peer_id_to_cid(&p);
        for s in [
            p.to_base58(),
            cid.to_string(),
            cid.to_string_of_base(Base::Base36Lower).unwrap(),
        ] {
            assert_eq!(parse_dht_key(&s), Ok(p.to_bytes()), "{s}");
        }
        let mh = cid::multihash::Multihash::<64>::wrap(0x12, &[5; 32]).unwrap();
        let raw = Cid::new_v1(0x55, mh);
        assert_eq!(parse_dht_key(&raw.to_string()), Ok(mh.to_bytes()));
        let v0 = Cid::new_v0(mh).unwrap();
        assert_eq!(parse_dht_key(&v0.to_string()), Ok(mh.to_bytes()));
        assert!(matches!(parse_dht_key("nope"), Err(IdError::InvalidCid(_))));
        assert!(matches!(
            parse_dht_key("12D3KooW0OIl"),
            Err(IdError::InvalidPeerId(_))
        ));
        assert_eq!(parse_dht_key(""), Err(IdError::Empty));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = parse_cid(&s);
            let _ = parse_peer_id(&s);
            let _ = parse_dht_key(&s);
        }

        #[test]
        fn peer_id_cid_roundtrip(seed in any::<u8>()) {
            let p = ed_peer(seed);
            prop_assert_eq!(parse_peer_id(&peer_id_to_cid(&p).to_string()), Ok(p));
            prop_assert_eq!(parse_peer_id(&p.to_base58()), Ok(p));
        }
    }
}
