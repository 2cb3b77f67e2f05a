//! Fault injection: the process dies after the blocks are written and before the head moves.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use cid::Cid;
use common::{World, commit_car, walk};
use futures::TryStreamExt as _;
use hydrant_index::{FjallIndex, IndexError, IpniChanges, IpniHead, IpniStore, IpniWriterLease};
use hydrant_ipni_publisher::{Publisher, PublisherConfig, PublisherStats};
use object_store::ObjectStore as _;

/// The embedded index whose head move fails while `crash` is set (nothing is written, as when
/// the process dies before the database commit).
struct CrashBeforeHead {
    inner: FjallIndex,
    crash: AtomicBool,
}

#[async_trait]
impl IpniStore for CrashBeforeHead {
    async fn ipni_head(&self) -> Result<Option<IpniHead>, IndexError> {
        self.inner.ipni_head().await
    }
    async fn ipni_cars(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, IndexError> {
        self.inner.ipni_cars(after, limit).await
    }
    async fn advance_ipni(
        &self,
        expected: Option<&Cid>,
        next: &IpniHead,
        changes: &IpniChanges,
    ) -> Result<bool, IndexError> {
        if self.crash.load(Ordering::SeqCst) {
            return Err(IndexError::Storage("killed".into()));
        }
        self.inner.advance_ipni(expected, next, changes).await
    }
    async fn catalogue_version(&self) -> Result<u64, IndexError> {
        self.inner.catalogue_version().await
    }
    async fn try_ipni_writer(&self) -> Result<Option<IpniWriterLease>, IndexError> {
        self.inner.try_ipni_writer().await
    }
}

async fn objects(world: &World) -> usize {
    world.store.list(None).try_collect::<Vec<_>>().await.unwrap().len()
}

#[tokio::test]
async fn a_crash_between_blocks_and_head_leaves_a_valid_chain() {
    let world = World::new();
    let provider = world.keypair.public().to_peer_id();
    commit_car(&world.index, 1, 30).await;
    world.publisher(10, 10).publish_pending().await.unwrap();
    let before = world.index.ipni_head().await.unwrap().unwrap();

    commit_car(&world.index, 2, 30).await;
    commit_car(&world.index, 3, 30).await;
    let faulty = Arc::new(CrashBeforeHead {
        inner: world.index.clone(),
        crash: AtomicBool::new(true),
    });
    let crashing = Publisher::new(
        Arc::new(world.index.clone()),
        faulty.clone(),
        world.store.clone(),
        {
            let mut c = PublisherConfig::new(world.keypair.clone(), vec![], vec![0x80, 0x12]);
            c.chunk_size = 10;
            c
        },
        Arc::new(PublisherStats::default()),
    );
    let written_before = objects(&world).await;
    assert!(crashing.publish_pending().await.is_err());
    assert!(objects(&world).await > written_before, "blocks were written");
    assert_eq!(world.index.ipni_head().await.unwrap(), Some(before.clone()));
    // The chain as served is still the old one, complete.
    assert_eq!(walk(&world.source(), &provider).await.len(), 1);

    // The restarted writer publishes both CARs once, on top of the old head.
    faulty.crash.store(false, Ordering::SeqCst);
    let head = world.publisher(10, 10).publish_pending().await.unwrap().unwrap();
    assert_eq!(head.ads, 3);
    let chain = walk(&world.source(), &provider).await;
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[1].ad.previous, Some(before.head));
    assert!(chain.iter().all(|w| w.entries.len() == 30));
}
