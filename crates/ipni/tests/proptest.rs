//! Decoders never panic on arbitrary input; encodings round-trip.

use hydrant_ipni::{
    Advertisement, EntryChunk, ExtendedProvider, ExtendedProviderEntry, SignedHead, metadata,
};
use proptest::prelude::*;

fn decode_everything(bytes: &[u8]) {
    if let Ok(ad) = Advertisement::from_dag_json(bytes) {
        let _ = ad.verify();
        let _ = ad.verify_signature();
        let _ = metadata::decode(&ad.metadata);
        assert_eq!(Advertisement::from_dag_json(&ad.to_dag_json()).unwrap(), ad);
    }
    if let Ok(chunk) = EntryChunk::from_dag_json(bytes) {
        assert_eq!(
            EntryChunk::from_dag_json(&chunk.to_dag_json()).unwrap(),
            chunk
        );
    }
    if let Ok(head) = SignedHead::from_dag_json(bytes) {
        let _ = head.verify();
    }
    let _ = metadata::decode(bytes);
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        for name in ["ad-3.json", "baguqeeracmkjvbtns3llljh2dtzoaryulc2kk7tfx3geut7mb6ornd37j6oq", "storetheindex-doc-head.json"] {
            let mut bytes = fixture(name);
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            decode_everything(&bytes);
            bytes.truncate(cut.index(bytes.len()));
            decode_everything(&bytes);
        }
    }

    #[test]
    fn advertisements_round_trip(
        provider in "[ -~\u{0}-\u{1f}\u{2028}é]{0,20}",
        addresses in proptest::collection::vec("[ -~\n\t]{0,30}", 0..3),
        context_id in proptest::collection::vec(any::<u8>(), 0..70),
        metadata in proptest::collection::vec(any::<u8>(), 0..40),
        signature in proptest::collection::vec(any::<u8>(), 0..40),
        is_rm in any::<bool>(),
        with_previous in any::<bool>(),
        eps in proptest::collection::vec(("[a-zA-Z0-9]{0,10}", proptest::collection::vec(any::<u8>(), 0..5)), 0..3),
        override_ in any::<bool>(),
    ) {
        let entries = hydrant_ipni::no_entries();
        let ad = Advertisement {
            previous: with_previous.then_some(entries),
            provider,
            addresses,
            entries,
            context_id,
            metadata,
            is_rm,
            extended_provider: (!eps.is_empty()).then(|| ExtendedProvider {
                providers: eps.into_iter().map(|(id, sig)| ExtendedProviderEntry {
                    id,
                    addresses: vec!["/ip4/1.2.3.4/tcp/1".into()],
                    metadata: vec![0x80, 0x12],
                    signature: sig,
                }).collect(),
                override_,
            }),
            signature,
        };
        let bytes = ad.to_dag_json();
        // Valid JSON.
        let _: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(Advertisement::from_dag_json(&bytes).unwrap(), ad);
    }
}
