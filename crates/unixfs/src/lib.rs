//! hydrant-unixfs: reading IPLD DAGs the way the trustless gateway and `hydrant export` need
//! to, and making UnixFS DAGs from files and directories the way Kubo does (the importer).
//!
//! What it does:
//! - finds the links of a block by its codec: [`links`] (dag-pb, raw, dag-cbor, dag-json);
//! - decodes DAG-PB ([`PbNode`]) and UnixFS `Data` ([`UnixFsData`]) with hand-written prost
//!   messages;
//! - walks a DAG depth-first without doing I/O or holding block data: [`DagWalker`], for
//!   `dag-scope=all|entity|block`, `entity-bytes=from:to` and `dups=y|n`;
//! - resolves content paths one block at a time: [`resolve_path`] (UnixFS directories, HAMT
//!   shards, DAG-CBOR/DAG-JSON maps and lists);
//! - imports files, directories and symlinks into UnixFS blocks with the CIDs Kubo/boxo make,
//!   per IPIP-0499 profiles, without doing I/O: [`importer`] ([`FileImporter`],
//!   [`DirectoryBuilder`], [`symlink_block`], [`ImportProfile`]);
//! - exports UnixFS DAGs back into file bytes, directory listings and trees, resolving
//!   `CID/path` first, without doing I/O: [`exporter`] ([`exporter::Resolver`],
//!   [`exporter::FileReader`], [`exporter::DirLister`], [`exporter::TreeExporter`]).
//!
//! Specs: `unixfs.md` (DAG-PB / UnixFS data model, HAMT), `trustless-gateway.md`
//! (§ "`dag-scope`", § "`entity-bytes`", § "CAR `order`", § "CAR `dups`"), `path-gateway.md`
//! (§ "Content resolution").
//!
//! Public API:
//! - `links(&Cid, &[u8]) -> Result<Vec<Cid>, DagError>`
//! - `PbNode::decode(&Cid, &[u8])`, `UnixFsData::decode(&Cid, &[u8])`, [`DataType`]
//! - `DagWalker::new(root, DagScope, dups)`, `DagWalker::with_entity_bytes(root,
//!   EntityBytes, dups)`, `.with_limits(WalkerLimits)`, `.next_wanted() -> Option<Cid>`,
//!   `.on_block(&Cid, &[u8]) -> Result<(), DagError>`, `.upcoming(n)`
//! - `"entity".parse::<DagScope>()`, `"0:*".parse::<EntityBytes>()`
//! - `resolve_path(&Cid, &[u8], &[String], &mut HamtCursor) -> Result<PathStep, DagError>`
//! - `ImportProfile::{unixfs_v1_2025(), unixfs_v0_2015(), by_name(&str)}` (pub fields)
//! - `FileImporter::new(&ImportProfile, Metadata) -> Result<Self, ImportError>`,
//!   `.push(&[u8]) -> Vec<Block>`, `.finish() -> Imported { cid, size, blocks }`
//! - `DirectoryBuilder::new(&ImportProfile, Metadata) -> Result<Self, ImportError>`,
//!   `.add(name, Cid, size) -> Result<(), ImportError>`, `.finish() -> Result<Imported, ImportError>`
//! - `symlink_block(&ImportProfile, target, Metadata) -> Result<Imported, ImportError>`
//! - `exporter::Resolver::new(root, "a/b") -> Result<Self, ExportError>`, `.next_wanted() ->
//!   Result<Option<Cid>, ExportError>`, `.on_block(&Cid, &[u8])`, `.finish() -> Resolved`
//! - `exporter::FileReader::new(cid, path, offset, Option<length>)`, `.next() ->
//!   Result<FileStep, ExportError>` (`Need(Cid)` / `Bytes(Bytes)` / `Done`), `.on_block(&Cid,
//!   &[u8])`, `.size()`
//! - `exporter::DirLister::new(cid, path, fetch_children)`, `.next_wanted()`, `.on_block()`,
//!   `.finish() -> Result<Vec<DirEntry>, ExportError>` (sorted by name)
//! - `exporter::TreeExporter::new(root)`, `.next() -> Result<TreeStep, ExportError>`
//!   (`Need(Cid)` / `Entry(Box<TreeEntry>)` / `Done`), `.on_block()`
//! - blocking drivers over `get: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>`:
//!   `exporter::{resolve_with, read_file_with, list_dir_with, export_tree_with}`
//!
//! Parsers of outside bytes (fuzz targets): [`PbNode::decode`], [`UnixFsData::decode`],
//! [`links`], [`resolve_path`], `EntityBytes::from_str`.

mod error;
pub mod exporter;
pub mod importer;
mod links;
mod path;
mod pb;
mod walker;

pub use error::DagError;
pub use importer::{
    Block, DirectoryBuilder, FileImporter, HamtEstimation, ImportError, ImportProfile, Imported,
    Metadata, ProfileError, symlink_block,
};
pub use links::links;
pub use path::{HAMT_HASH_BITS, HamtCursor, PathStep, resolve_path};
pub use pb::{DataType, MAX_HAMT_FANOUT, PbLink, PbNode, UnixFsData};
pub use walker::{
    DEFAULT_MAX_PENDING, DEFAULT_MAX_SEEN, DagScope, DagWalker, EntityBytes, ParamError,
    WalkerLimits,
};
