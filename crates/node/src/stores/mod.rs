//! The bottom floor: the object store, the block index with its meters, and [`Services`], which
//! opens them from the configuration with the ingest pipeline. Nothing here knows of HTTP or
//! libp2p.
//!
//! [`Services`]: services::Services

pub mod delete;
pub mod denylists;
pub(crate) mod export;
pub(crate) mod filter_snapshot;
pub(crate) mod meters;
pub mod pins;
pub mod services;
pub mod spill;
pub mod storage;
