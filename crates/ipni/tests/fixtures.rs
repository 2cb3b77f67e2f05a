//! Every fixture in tests/fixtures (see SOURCES.md): decoded, re-encoded, verified, re-signed.

mod common;

use cid::Cid;
use common::{b64, fixture, json, peer};
use hydrant_ipni::{
    Advertisement, SignedHead, VerifyError, dag_json_cid, metadata, no_entries, parse_peer_id,
};

type Edit = Box<dyn Fn(&mut Advertisement)>;

const BLOCKS: [&str; 2] = [
    "baguqeeracmkjvbtns3llljh2dtzoaryulc2kk7tfx3geut7mb6ornd37j6oq",
    "baguqeeract2ajcyrt7uhzl7o42oe6qcm4edbn7hb3txlmwsfwywndjpww6wa",
];

/// ad-1..4.json are pretty-printed (and ad-1/ad-2 pad their base64), so they are not the
/// stored bytes; these CIDs are of their canonical DAG-JSON form, computed independently (a
/// Python `json.dumps(sort_keys=True, separators=(",", ":"))` with unpadded base64).
const PRETTY_ADS: [(&str, &str); 4] = [
    (
        "ad-1.json",
        "baguqeeralytnemvt4s5iu2euyx5hozgbyphga5d2h7warhg4nelvx332w7da",
    ),
    (
        "ad-2.json",
        "baguqeerayybp64plr4zjei5po2txa77wxq4u4wom2nksgkjucsk5tqvcrjxq",
    ),
    (
        "ad-3.json",
        "baguqeeralozxmzstuckoq6nlnivy3gzweasm6lbmpsutcsbk6gcm6fwzmzfa",
    ),
    (
        "ad-4.json",
        "baguqeerapeoqvt4hjs27fyp2gomfjiuwedl3exlsevmrjtsej5rauscjcpeq",
    ),
];

#[test]
fn stored_blocks_reencode_byte_for_byte() {
    for name in BLOCKS {
        let bytes = fixture(name);
        assert_eq!(dag_json_cid(&bytes).to_string(), name);
        let ad = Advertisement::from_dag_json(&bytes).unwrap();
        assert_eq!(ad.to_dag_json(), bytes, "{name}");
        assert_eq!(ad.cid().to_string(), name);
        let provider = ad.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(provider.to_base58(), ad.provider);
    }
}

#[test]
fn block_with_three_ed25519_extended_providers() {
    let ad = Advertisement::from_dag_json(&fixture(BLOCKS[0])).unwrap();
    assert_eq!(ad.entries, no_entries());
    let ep = ad.extended_provider.as_ref().unwrap();
    assert_eq!(ep.providers.len(), 3);
    assert!(!ep.override_);
    ad.verify().unwrap();
    // The extended-provider signatures cover the context ID.
    let mut tampered = ad.clone();
    tampered.context_id = b"other".to_vec();
    assert!(matches!(
        tampered.verify(),
        Err(VerifyError::ContentMismatch)
    ));
    // ... and the entries' addresses, metadata, ID and the override flag.
    for edit in 0..4 {
        let mut t = ad.clone();
        let ep = t.extended_provider.as_mut().unwrap();
        match edit {
            0 => ep.providers[1].addresses.push("/ip4/1.2.3.4/tcp/1".into()),
            1 => ep.providers[2].metadata = metadata::bitswap(),
            2 => ep.override_ = true,
            _ => ep.providers[1].id = ep.providers[2].id.clone(),
        }
        assert!(t.verify().is_err(), "edit {edit}");
    }
    // Dropping the advertisement's own provider from the list is refused.
    let mut t = ad.clone();
    t.extended_provider.as_mut().unwrap().providers.remove(0);
    assert!(matches!(t.verify(), Err(VerifyError::ProviderNotExtended)));
}

#[test]
fn pretty_printed_ads_decode_verify_and_reencode() {
    for (name, canonical) in PRETTY_ADS {
        let ad = Advertisement::from_dag_json(&fixture(name)).unwrap();
        let bytes = ad.to_dag_json();
        assert_eq!(dag_json_cid(&bytes).to_string(), canonical, "{name}");
        assert_eq!(Advertisement::from_dag_json(&bytes).unwrap(), ad);
        let provider = ad.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(provider.to_base58(), ad.provider);
    }
}

/// RSA PKCS#1 v1.5 signatures are deterministic: re-signing a fixture's content with the
/// fixture's key must give the fixture's signature bytes.
#[test]
fn signing_reproduces_go_libipni_rsa_signatures() {
    let (id1, key1) = peer("peer-1.json");
    let (id2, key2) = peer("peer-2.json");
    for (name, _) in PRETTY_ADS {
        let ad = Advertisement::from_dag_json(&fixture(name)).unwrap();
        let mut resigned = ad.clone();
        resigned.signature.clear();
        let key = if ad.provider == id1 {
            &key1
        } else {
            assert_eq!(ad.provider, id2);
            &key2
        };
        if let Some(ep) = &mut resigned.extended_provider {
            for p in &mut ep.providers {
                p.signature.clear();
            }
            resigned
                .sign_with_extended_providers(key, |id| {
                    [(&id1, &key1), (&id2, &key2)]
                        .into_iter()
                        .find(|(i, _)| i.as_str() == id)
                        .map(|(_, k)| k)
                })
                .unwrap();
            assert!(
                resigned.clone().sign(key).is_err(),
                "go refuses Sign with EPs"
            );
        } else {
            resigned.sign(key).unwrap();
        }
        assert_eq!(resigned.signature, ad.signature, "{name}");
        assert_eq!(resigned, ad, "{name}: extended-provider signatures");
    }
}

#[test]
fn tampering_signed_fields_fails_context_id_does_not() {
    let (_, key2) = peer("peer-2.json");
    for (name, _) in PRETTY_ADS.iter().take(2) {
        let ad = Advertisement::from_dag_json(&fixture(name)).unwrap();
        ad.verify().unwrap();
        let cid: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap();
        let edits: Vec<Edit> = vec![
            Box::new(move |a| {
                a.previous = if a.previous.is_some() {
                    None
                } else {
                    Some(cid)
                }
            }),
            Box::new(move |a| a.entries = cid),
            Box::new(|a| a.provider.push('x')),
            Box::new(|a| a.addresses.push("/ip4/1.2.3.4/tcp/1".into())),
            Box::new(|a| a.addresses[0].push('1')),
            Box::new(|a| a.metadata = metadata::ipfs_gateway_http()),
            Box::new(|a| a.is_rm = !a.is_rm),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut t = ad.clone();
            edit(&mut t);
            assert!(t.verify_signature().is_err(), "{name}: edit {i}");
        }
        // A flipped byte anywhere in the envelope's signature.
        let mut t = ad.clone();
        let n = t.signature.len();
        t.signature[n - 5] ^= 1;
        assert!(matches!(t.verify(), Err(VerifyError::BadSignature)));
        // Not covered, as in go-libipni: the context ID.
        let mut t = ad.clone();
        t.context_id = b"another context".to_vec();
        assert_eq!(t.verify().unwrap(), ad.verify().unwrap());
        // A valid signature by someone else: verify_signature names the signer, verify refuses.
        let mut t = ad.clone();
        t.sign(&key2).unwrap();
        let signer = t.verify_signature().unwrap();
        if ad.provider != signer.to_base58() {
            assert!(matches!(t.verify(), Err(VerifyError::WrongSigner { .. })));
        }
    }
}

#[test]
fn nftstorage_production_ad_and_head() {
    let v = json("go-libipni-nftstorage.json");
    let head_cid: Cid = v["cid"].as_str().unwrap().parse().unwrap();
    let ad_bytes = v["ad"].as_str().unwrap().as_bytes();
    // The served bytes hash to the head CID (go-libipni checks the digest of what it fetched).
    assert_eq!(dag_json_cid(ad_bytes), head_cid);
    let ad = Advertisement::from_dag_json(ad_bytes).unwrap();
    // The provider is written as a libp2p-key CID; it is the publisher.
    assert!(ad.provider.starts_with("bafzbei"));
    let provider = ad.verify().unwrap();
    assert_eq!(provider.to_base58(), v["publisher"].as_str().unwrap());
    assert_eq!(parse_peer_id(&ad.provider), Some(provider));
    // The served bytes pad one base64 string ("...cQ=="), which go-ipld-prime reads but never
    // writes: re-encoding canonically differs from the served bytes by exactly that padding.
    let reencoded = ad.to_dag_json();
    assert_ne!(reencoded, ad_bytes);
    assert_eq!(
        String::from_utf8(reencoded).unwrap(),
        v["ad"].as_str().unwrap().replacen("cQ==\"", "cQ\"", 1)
    );

    let head_text = v["head"].as_str().unwrap();
    let head = SignedHead::from_dag_json(head_text.as_bytes()).unwrap();
    assert_eq!(head.head, head_cid);
    assert_eq!(head.topic, None);
    assert_eq!(head.verify().unwrap(), provider);
    let mut t = head.clone();
    t.head = ad.previous.unwrap();
    assert!(matches!(t.verify(), Err(VerifyError::BadSignature)));
    let mut t = head.clone();
    t.topic = Some("/indexer/ingest/mainnet".into());
    assert!(t.verify().is_err());
}

#[test]
fn storetheindex_signed_head_with_topic() {
    let bytes = fixture("storetheindex-doc-head.json");
    let bytes = bytes.trim_ascii_end();
    let head = SignedHead::from_dag_json(bytes).unwrap();
    assert_eq!(head.topic.as_deref(), Some("/indexer/ingest/testnet"));
    assert_eq!(head.to_dag_json(), bytes, "byte-identical re-encoding");
    let signer = head.verify().unwrap();
    assert_eq!(
        signer,
        libp2p_identity::PublicKey::try_decode_protobuf(&head.pubkey)
            .unwrap()
            .to_peer_id()
    );
    // The topic is signed.
    let mut t = head.clone();
    t.topic = Some("/indexer/ingest/mainnet".into());
    assert!(matches!(t.verify(), Err(VerifyError::BadSignature)));
    let mut t = head.clone();
    t.topic = None;
    assert!(t.verify().is_err());
}

#[test]
fn signed_head_sign_round_trip_and_rsa_determinism() {
    let (_, key1) = peer("peer-1.json");
    let head: Cid = BLOCKS[1].parse().unwrap();
    let a = SignedHead::new(head, "/indexer/ingest/mainnet", &key1).unwrap();
    let b = SignedHead::new(head, "/indexer/ingest/mainnet", &key1).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.pubkey,
        b64(json("peer-1.json")["pubKey"].as_str().unwrap())
    );
    let decoded = SignedHead::from_dag_json(&a.to_dag_json()).unwrap();
    assert_eq!(decoded, a);
    assert_eq!(decoded.verify().unwrap(), key1.public().to_peer_id());
    let no_topic = SignedHead::new(head, "", &key1).unwrap();
    assert_eq!(no_topic.topic, None);
    assert!(
        !String::from_utf8(no_topic.to_dag_json())
            .unwrap()
            .contains("topic")
    );
    no_topic.verify().unwrap();
}

#[test]
fn fixture_metadata() {
    let ad = Advertisement::from_dag_json(&fixture("ad-1.json")).unwrap();
    assert_eq!(ad.metadata, metadata::bitswap());
    assert_eq!(
        metadata::decode(&ad.metadata).unwrap(),
        [metadata::Protocol::Bitswap]
    );
}

#[test]
fn ed25519_new_sign_verify() {
    let key = libp2p_identity::Keypair::ed25519_from_bytes([7u8; 32]).unwrap();
    let mut ad = Advertisement::new(
        key.public().to_peer_id(),
        vec!["/dns4/example.org/tcp/443/https".into()],
        no_entries(),
        b"ctx".to_vec(),
        metadata::ipfs_gateway_http(),
    );
    ad.is_rm = true;
    ad.sign(&key).unwrap();
    let again = {
        let mut a = ad.clone();
        a.sign(&key).unwrap();
        a
    };
    assert_eq!(again.signature, ad.signature, "Ed25519 is deterministic");
    let decoded = Advertisement::from_dag_json(&ad.to_dag_json()).unwrap();
    assert_eq!(decoded, ad);
    assert_eq!(decoded.verify().unwrap(), key.public().to_peer_id());
    assert_eq!(decoded.cid(), dag_json_cid(&ad.to_dag_json()));
}
