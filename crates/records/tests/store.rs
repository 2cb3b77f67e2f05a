//! `/pk/` validation and the bounded `RecordStore`.

mod common;

use std::time::Duration;

use common::*;
use hydrant_records::{
    MAX_PUBLIC_KEY_RECORD_SIZE, PK_PREFIX, PutOutcome, RecordError, RecordStore, StoreLimits,
    ValidRecord, validate,
};

#[test]
fn pk_records_validate_for_every_key_type() {
    for key in [ed25519(1), secp256k1_key(2), ecdsa_key(3), rsa_key()] {
        let value = key.public().encode_protobuf();
        match validate(&pk_key(&key), &value, now()) {
            Ok(ValidRecord::PublicKey(record)) => {
                assert_eq!(record.public_key(), &key.public());
                assert_eq!(record.raw(), value.as_slice());
                assert_eq!(record.peer_id(), peer_id(&key).to_bytes().as_slice());
            }
            other => panic!("{:?}: {other:?}", key.key_type()),
        }
    }
}

#[test]
fn pk_records_must_hash_to_the_key() {
    let err = validate(
        &pk_key(&rsa_key()),
        &ecdsa_key(4).public().encode_protobuf(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, RecordError::PublicKeyMismatch), "{err}");

    let err = validate(&pk_key(&ed25519(5)), b"not a key", now()).unwrap_err();
    assert!(matches!(err, RecordError::InvalidPublicKey(_)), "{err}");

    let err = validate(PK_PREFIX, &ed25519(5).public().encode_protobuf(), now()).unwrap_err();
    assert!(matches!(err, RecordError::InvalidName { .. }), "{err}");

    let big = vec![0u8; MAX_PUBLIC_KEY_RECORD_SIZE + 1];
    let err = validate(&pk_key(&ed25519(5)), &big, now()).unwrap_err();
    assert!(matches!(err, RecordError::RecordTooLarge { .. }), "{err}");
}

fn limits(max_records: usize, max_bytes: usize) -> StoreLimits {
    StoreLimits {
        max_records,
        max_bytes,
        max_age: Duration::from_secs(48 * 3600),
    }
}

#[test]
fn store_keeps_the_better_record_and_clones_share_it() {
    let store = RecordStore::default();
    let shared = store.clone();
    let key = ed25519(10);
    let name = ipns_key(&key);
    let v1 = record(&key, &Fields::new(1, 3600));
    let v2 = record(&key, &Fields::new(2, 60));

    assert_eq!(store.get(&name, now()), None);
    assert_eq!(store.put(&name, &v1, now()).unwrap(), PutOutcome::Stored);
    assert_eq!(shared.get(&name, now()), Some(v1.clone()));
    assert_eq!(store.put(&name, &v2, now()).unwrap(), PutOutcome::Stored);
    assert_eq!(
        store.put(&name, &v1, now()).unwrap(),
        PutOutcome::KeptExisting
    );
    assert_eq!(shared.get(&name, now()), Some(v2.clone()));
    // Re-putting the held record is accepted (and renews it).
    assert_eq!(store.put(&name, &v2, now()).unwrap(), PutOutcome::Stored);
    assert_eq!(store.len(), 1);
    assert_eq!(store.total_bytes(), name.len() + v2.len());
}

#[test]
fn store_refuses_invalid_records_and_other_namespaces() {
    let store = RecordStore::default();
    let err = store.put(b"/v/anything", b"value", now()).unwrap_err();
    assert!(
        matches!(err, RecordError::UnsupportedNamespace { .. }),
        "{err}"
    );
    let key = ed25519(11);
    let err = store
        .put(
            &ipns_key(&key),
            &record(&ed25519(12), &Fields::new(1, 60)),
            now(),
        )
        .unwrap_err();
    assert!(matches!(err, RecordError::InvalidSignature), "{err}");
    assert!(store.is_empty());
    assert_eq!(store.total_bytes(), 0);
}

#[test]
fn store_never_returns_expired_records() {
    let store = RecordStore::default();
    let key = ed25519(13);
    let name = ipns_key(&key);
    store
        .put(&name, &record(&key, &Fields::new(1, 60)), now())
        .unwrap();
    let later = now() + Duration::from_secs(59);
    assert!(store.get(&name, later).is_some());
    let expired = now() + Duration::from_secs(61);
    assert_eq!(store.get(&name, expired), None);
    assert!(store.is_empty(), "the expired record is dropped on read");

    // An expired record is replaced even by a lower sequence number.
    store
        .put(&name, &record(&key, &Fields::new(5, 60)), now())
        .unwrap();
    let fresh = record(&key, &Fields::new(1, 3600));
    assert_eq!(
        store.put(&name, &fresh, expired).unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(store.get(&name, expired), Some(fresh));
}

#[test]
fn max_age_bounds_records_without_a_near_eol() {
    let store = RecordStore::new(StoreLimits {
        max_age: Duration::from_secs(100),
        ..StoreLimits::default()
    });
    let key = ed25519(14);
    let pk = pk_key(&key);
    store
        .put(&pk, &key.public().encode_protobuf(), now())
        .unwrap();
    let name = ipns_key(&key);
    store
        .put(&name, &record(&key, &Fields::new(1, 1_000_000)), now())
        .unwrap();
    let before = now() + Duration::from_secs(99);
    assert!(store.get(&pk, before).is_some() && store.get(&name, before).is_some());
    let after = now() + Duration::from_secs(100);
    assert_eq!(store.get(&pk, after), None);
    assert_eq!(store.get(&name, after), None);
}

#[test]
fn full_store_refuses_new_keys_but_updates_held_ones() {
    let store = RecordStore::new(limits(2, usize::MAX));
    let keys: Vec<_> = (20..23).map(ed25519).collect();
    for key in &keys[..2] {
        store
            .put(&ipns_key(key), &record(key, &Fields::new(1, 60)), now())
            .unwrap();
    }
    let err = store
        .put(
            &ipns_key(&keys[2]),
            &record(&keys[2], &Fields::new(1, 60)),
            now(),
        )
        .unwrap_err();
    assert!(
        matches!(err, RecordError::StoreFull { records: 2, .. }),
        "{err}"
    );
    assert_eq!(store.get(&ipns_key(&keys[2]), now()), None);
    // Updating a held key still works at capacity.
    let newer = record(&keys[0], &Fields::new(2, 60));
    assert_eq!(
        store.put(&ipns_key(&keys[0]), &newer, now()).unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(store.get(&ipns_key(&keys[0]), now()), Some(newer));
    // Once held records expire, a new key gets in (the full store purges first).
    let later = now() + Duration::from_secs(61);
    let late = record(&keys[2], &Fields::new(1, 3600));
    assert_eq!(
        store.put(&ipns_key(&keys[2]), &late, later).unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn byte_budget_counts_keys_and_values() {
    let a = ed25519(30);
    let b = ed25519(31);
    let rec_a = record(&a, &Fields::new(1, 60));
    let rec_b = record(&b, &Fields::new(1, 60));
    let size_a = ipns_key(&a).len() + rec_a.len();
    let size_b = ipns_key(&b).len() + rec_b.len();
    // Room for both exactly: both fit.
    let store = RecordStore::new(limits(100, size_a + size_b));
    store.put(&ipns_key(&a), &rec_a, now()).unwrap();
    store.put(&ipns_key(&b), &rec_b, now()).unwrap();
    assert_eq!(store.total_bytes(), size_a + size_b);
    // One byte short: the second is refused.
    let store = RecordStore::new(limits(100, size_a + size_b - 1));
    store.put(&ipns_key(&a), &rec_a, now()).unwrap();
    let err = store.put(&ipns_key(&b), &rec_b, now()).unwrap_err();
    assert!(matches!(err, RecordError::StoreFull { .. }), "{err}");
    // A larger replacement that does not fit is refused and the old record stays.
    let store = RecordStore::new(limits(100, size_a));
    store.put(&ipns_key(&a), &rec_a, now()).unwrap();
    let mut bigger = Fields::new(2, 60);
    bigger.value = vec![b'x'; 200];
    let err = store
        .put(&ipns_key(&a), &record(&a, &bigger), now())
        .unwrap_err();
    assert!(matches!(err, RecordError::StoreFull { .. }), "{err}");
    assert_eq!(store.get(&ipns_key(&a), now()), Some(rec_a));
}

#[test]
fn purge_expired_frees_records_and_bytes() {
    let store = RecordStore::default();
    let short = ed25519(40);
    let long = ed25519(41);
    store
        .put(
            &ipns_key(&short),
            &record(&short, &Fields::new(1, 10)),
            now(),
        )
        .unwrap();
    let long_rec = record(&long, &Fields::new(1, 1000));
    store.put(&ipns_key(&long), &long_rec, now()).unwrap();
    assert_eq!(store.purge_expired(now() + Duration::from_secs(11)), 1);
    assert_eq!(store.len(), 1);
    assert_eq!(store.total_bytes(), ipns_key(&long).len() + long_rec.len());
}

#[test]
fn select_on_pk_records_keeps_the_first_and_refuses_mixed_keys() {
    use hydrant_records::{Choice, select};
    let key = ecdsa_key(50);
    let pk = validate(&pk_key(&key), &key.public().encode_protobuf(), now()).unwrap();
    assert_eq!(select(&pk, &pk.clone()).unwrap(), Choice::First);
    assert_eq!(pk.eol(), None);
    assert_eq!(pk.key(), pk_key(&key));

    let mut fields = Fields::new(1, 60);
    fields.pub_key = true;
    let ipns = validate(&ipns_key(&key), &record(&key, &fields), now()).unwrap();
    assert!(ipns.eol().is_some());
    assert!(matches!(select(&pk, &ipns), Err(RecordError::KeyMismatch)));
    let other = ed25519(51);
    let other_pk = validate(&pk_key(&other), &other.public().encode_protobuf(), now()).unwrap();
    assert!(matches!(
        select(&pk, &other_pk),
        Err(RecordError::KeyMismatch)
    ));
}
