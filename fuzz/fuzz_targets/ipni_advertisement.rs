//! Fuzz target: the IPNI DAG-JSON decoders and signature checks (`hydrant_ipni`).
//!
//! Input: bytes fetched from a publisher (`/ipni/v1/ad/head`, `/ipni/v1/ad/{CID}`). Decodes them
//! as an advertisement, an entry chunk and a signed head, verifies what decodes, and reads
//! the advertisement's metadata and the input as metadata. Checks: no panic; every decoded
//! node re-encodes to bytes that decode to the same node; a verifying advertisement or head
//! still verifies, with the same signer, after re-encoding; metadata that decodes, and was
//! sorted, re-encodes to the input.
#![no_main]

use hydrant_ipni::{Advertisement, EntryChunk, SignedHead, metadata};
use libfuzzer_sys::fuzz_target;

fn check_metadata(bytes: &[u8]) {
    if let Ok(protocols) = metadata::decode(bytes)
        && protocols.windows(2).all(|w| w[0].code() <= w[1].code())
    {
        assert_eq!(metadata::encode(&protocols), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ad) = Advertisement::from_dag_json(data) {
        let again = Advertisement::from_dag_json(&ad.to_dag_json()).expect("re-encoding decodes");
        assert_eq!(again, ad);
        let signer = ad.verify_signature().ok();
        assert_eq!(again.verify_signature().ok(), signer);
        let _ = ad.verify();
        let _ = ad.cid();
        check_metadata(&ad.metadata);
    }
    if let Ok(chunk) = EntryChunk::from_dag_json(data) {
        let again = EntryChunk::from_dag_json(&chunk.to_dag_json()).expect("re-encoding decodes");
        assert_eq!(again, chunk);
    }
    if let Ok(head) = SignedHead::from_dag_json(data) {
        let again = SignedHead::from_dag_json(&head.to_dag_json()).expect("re-encoding decodes");
        assert_eq!(again, head);
        assert_eq!(again.verify().ok(), head.verify().ok());
    }
    check_metadata(data);
});
