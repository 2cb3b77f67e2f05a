//! `hydrant export`: a CARv1 of a DAG, read from the local store.
//!
//! The bytes are the same as the trustless gateway's `?format=car&dag-scope=all&dups=n` answer
//! (trustless-gateway.md § "CAR Responses"): one root, blocks in depth-first order, each once.

use bytes::Bytes;
use cid::Cid;
use futures::Stream;
use hydrant_gateway::{CarRequest, CarStreamError, CarStreamOptions};
use hydrant_unixfs::DagScope;

use crate::stores::services::Services;

/// The CARv1 of the whole DAG under `root`: header first, then one section per block.
///
/// # Errors
/// The stream ends with one [`CarStreamError`] when a block is missing or unreadable.
pub fn car_stream(
    services: &Services,
    root: Cid,
) -> impl Stream<Item = Result<Bytes, CarStreamError>> + Send + 'static {
    hydrant_gateway::car_stream(
        services.blockstore.clone(),
        CarRequest::new(root, DagScope::All, false),
        CarStreamOptions::default(),
    )
}
