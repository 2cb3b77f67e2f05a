//! IPNI advertisements as go-libipni builds them: the data model, its DAG-JSON encoding, and
//! the signatures. No publishing, announcing or storage.
//!
//! Specs: ../shared/specs/ipni.md ("Advertisements", "Entries", "Metadata",
//! "ExtendedProvider", "Advertisement Transfer") and ../shared/specs/ipni-http-provider.md
//! ("GET /ipni/v1/ad/head", "GET /ipni/v1/ad/{CID}"). Where the specs are silent the
//! reference is go-libipni (`ingest/schema`, `dagsync/ipnisync/head`, `metadata`) and
//! index-provider (`engine/chunker`), matched byte for byte against their fixtures.
//!
//! Public API:
//! - [`Advertisement`] (+ [`ExtendedProvider`], [`ExtendedProviderEntry`]): DAG-JSON
//!   [`Advertisement::from_dag_json`]/[`Advertisement::to_dag_json`], [`Advertisement::cid`],
//!   [`Advertisement::sign`], [`Advertisement::sign_with_extended_providers`],
//!   [`Advertisement::verify`] (signer must be the provider) and
//!   [`Advertisement::verify_signature`] (returns whoever signed, as go-libipni).
//! - [`no_entries`]: the `Entries` link of advertisements without multihashes.
//! - [`EntryChunk`], [`EntryChain::build`]: entry chunks and the chunker.
//! - [`SignedHead`]: the `/ipni/v1/ad/head` document.
//! - [`metadata`]: transport metadata (Bitswap, trustless gateway, others by code).
//! - [`dag_json_cid`]: the CID a fetched DAG-JSON block must have.
//!
//! All decoders take bounded input, refuse malformed input with an error and never panic.

mod advertisement;
mod dagjson;
mod entries;
mod envelope;
mod error;
mod head;
pub mod metadata;

pub use advertisement::{
    AD_SIGNATURE_CODEC, Advertisement, EXTENDED_PROVIDER_SIGNATURE_CODEC, ExtendedProvider,
    ExtendedProviderEntry, MAX_ADVERTISEMENT_SIZE, MAX_CONTEXT_ID_LEN, MAX_METADATA_LEN,
    SIGNATURE_DOMAIN, no_entries, parse_peer_id,
};
pub use dagjson::{DAG_JSON, dag_json_cid};
pub use entries::{DEFAULT_CHUNK_SIZE, EntryBlock, EntryChain, EntryChunk, MAX_ENTRY_CHUNK_SIZE};
pub use error::{DecodeError, SignError, VerifyError};
pub use head::{MAX_SIGNED_HEAD_SIZE, SignedHead};
