//! The advertisement chain over a real embedded index and object store.

mod common;

use std::sync::Arc;

use common::{World, car_key, car_multihashes, commit_car, set, walk};
use hydrant_index::{CarCatalog, IpniStore};
use hydrant_ipni::EntryChain;
use hydrant_ipni_publisher::context_id;

#[tokio::test]
async fn cars_and_a_deletion_make_one_signed_chain() {
    let world = World::new();
    let provider = world.keypair.public().to_peer_id();
    // 0 blocks, under one chunk, exactly two chunks, and two chunks and a bit.
    let counts = [(1, 0), (2, 7), (3, 200), (4, 250)];
    for (n, count) in counts {
        commit_car(&world.index, n, count).await;
    }
    let publisher = world.publisher(100, 3);
    let head = publisher.publish_pending().await.unwrap().expect("published");
    assert_eq!(head.ads, 4);
    assert!(publisher.publish_pending().await.unwrap().is_none(), "nothing new");

    world.index.delete_car(&car_key(3)).await.unwrap();
    let head = publisher.publish_pending().await.unwrap().expect("the removal");
    assert_eq!(head.ads, 5);

    let chain = walk(&world.source(), &provider).await;
    assert_eq!(chain.len(), 5);
    assert!(chain[0].ad.previous.is_none(), "genesis");
    for pair in chain.windows(2) {
        assert_eq!(pair[1].ad.previous, Some(pair[0].cid));
    }
    // Additions in key order, then the removal.
    for (walked, (n, count)) in chain.iter().zip(counts) {
        assert!(!walked.ad.is_rm);
        assert_eq!(walked.ad.context_id, context_id(&car_key(n)));
        assert_eq!(walked.ad.metadata, hydrant_ipni::metadata::bitswap());
        let expected = car_multihashes(n, count);
        assert_eq!(set(&walked.entries), set(&expected), "CAR {n}");
        assert_eq!(walked.entries.len(), expected.len(), "no duplicates");
        assert_eq!(walked.chunks, (count as usize).div_ceil(100));
        if count == 0 {
            assert_eq!(walked.ad.entries, hydrant_ipni::no_entries());
        } else {
            // Linked as index-provider's chunker links the catalogue's (byte-ordered) list.
            let mut ordered = expected.clone();
            ordered.sort_by_key(|m| m.to_bytes());
            assert_eq!(Some(walked.ad.entries), EntryChain::build(&ordered, 100).head());
        }
    }
    let removal = &chain[4].ad;
    assert!(removal.is_rm);
    assert_eq!(removal.context_id, context_id(&car_key(3)));
    assert_eq!(removal.entries, hydrant_ipni::no_entries());
    assert!(removal.metadata.is_empty());
    assert_eq!(
        world.index.ipni_cars(None, 10).await.unwrap(),
        vec![car_key(1), car_key(2), car_key(4)]
    );
}

#[tokio::test]
async fn a_restart_continues_the_chain_without_re_advertising() {
    let world = World::new();
    let provider = world.keypair.public().to_peer_id();
    commit_car(&world.index, 1, 5).await;
    commit_car(&world.index, 2, 5).await;
    let first = world
        .publisher(16_384, 100)
        .publish_pending()
        .await
        .unwrap()
        .unwrap();
    // Reopen the database: a new process.
    let World {
        dir,
        index,
        store,
        keypair,
    } = world;
    drop(index);
    let world = World {
        index: hydrant_index::FjallIndex::open(dir.path()).unwrap(),
        dir,
        store,
        keypair,
    };
    assert_eq!(world.index.ipni_head().await.unwrap(), Some(first.clone()));
    let publisher = world.publisher(16_384, 100);
    assert!(publisher.publish_pending().await.unwrap().is_none());
    commit_car(&world.index, 3, 5).await;
    let next = publisher.publish_pending().await.unwrap().unwrap();
    assert_eq!(next.ads, 3);
    let chain = walk(&world.source(), &provider).await;
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[1].cid, first.head);
    assert_eq!(chain[2].ad.context_id, context_id(&car_key(3)));
}

#[tokio::test]
async fn racing_writers_never_fork_the_chain() {
    let world = World::new();
    let provider = world.keypair.public().to_peer_id();
    for n in 1..=12 {
        commit_car(&world.index, n, 3).await;
    }
    let (a, b) = (
        Arc::new(world.publisher(16_384, 2)),
        Arc::new(world.publisher(16_384, 3)),
    );
    let (ra, rb) = tokio::join!(a.publish_pending(), b.publish_pending());
    ra.unwrap();
    rb.unwrap();
    let chain = walk(&world.source(), &provider).await;
    let mut contexts: Vec<Vec<u8>> = chain.iter().map(|w| w.ad.context_id.clone()).collect();
    assert_eq!(contexts.len(), 12, "every CAR exactly once");
    contexts.sort();
    contexts.dedup();
    assert_eq!(contexts.len(), 12);
}
