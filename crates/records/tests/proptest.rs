//! `validate` is total: whatever bytes arrive, it returns (never panics), and anything it accepts
//! is the exact input.

mod common;

use common::*;
use hydrant_records::{IPNS_PREFIX, PK_PREFIX, validate};
use proptest::prelude::*;

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(|id| [IPNS_PREFIX, &id].concat()),
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(|id| [PK_PREFIX, &id].concat()),
        Just(ipns_key(&ed25519(1))),
        Just(pk_key(&ed25519(1))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validate_never_panics_on_arbitrary_bytes(
        key in key_strategy(),
        value in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        if let Ok(record) = validate(&key, &value, now()) {
            prop_assert_eq!(record.raw(), value.as_slice());
            prop_assert_eq!(record.key(), key);
        }
    }

    #[test]
    fn mutated_valid_records_never_panic_and_never_change_meaning(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let key = ed25519(1);
        let mut raw = record(&key, &Fields::new(9, 3600));
        for (at, byte) in flips {
            let i = at.index(raw.len());
            raw[i] ^= byte;
        }
        if truncate {
            raw.truncate(cut.index(raw.len()));
        }
        if let Ok(hydrant_records::ValidRecord::Ipns(valid)) = validate(&ipns_key(&key), &raw, now()) {
            // Only unsigned bytes (V1 signature, unknown fields) can change and still validate.
            prop_assert_eq!(valid.sequence(), 9);
            let expected = Fields::new(9, 3600).value;
            prop_assert_eq!(valid.value(), expected.as_slice());
        }
    }
}
