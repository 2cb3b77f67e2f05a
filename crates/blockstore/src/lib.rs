//! Block reads over stored CARs: [`CarBlockstore`], the [`hydrant_blocks::Blockstore`] that
//! Bitswap, the gateway and `export` read through.
//!
//! A block is found through a [`hydrant_index::BlockLookup`] and read with a ranged read from
//! the object store that holds the CAR file unaltered. `get_many` coalesces neighbouring
//! blocks of one CAR into one ranged read. Identity-hash CIDs (multihash code 0x00) are
//! answered from the CID itself, with no index or storage request.
//!
//! Spec: blocks are the `data` of CAR sections (`../shared/specs/carv1.md`, "Data"), read at the
//! offsets the index recorded at ingest; with [`ReadConfig::verify`] a block is served only if
//! it hashes to its CID's multihash, by the same rule ingest applied
//! ([`hydrant_blocks::verify`]).
//!
//! Public API: [`CarBlockstore`] (`new(index, store, ReadConfig)`, `stats()`), [`ReadConfig`],
//! [`ReadStats`], [`MAX_CONCURRENT_RANGE_READS`], [`CACHE_ENTRY_OVERHEAD`].

mod car_blockstore;

pub use car_blockstore::{
    CACHE_ENTRY_OVERHEAD, CarBlockstore, MAX_CONCURRENT_RANGE_READS, ReadConfig, ReadStats,
};
