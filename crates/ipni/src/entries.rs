//! Entry chunks: the linked list of multihashes an advertisement's `Entries` points to
//! (ipni.md, "EntryChunk Chain"; go-libipni `schema.EntryChunk`, index-provider
//! `engine/chunker.ChainChunker`).

use cid::Cid;
use multihash::Multihash;
use serde::Deserialize;

use crate::DecodeError;
use crate::dagjson::{self, BytesDe, LinkDe, Writer, some};

/// Multihashes per entry chunk in index-provider's engine (`EntriesChunkSize` default).
pub const DEFAULT_CHUNK_SIZE: usize = 16_384;

/// Largest entry chunk [`EntryChunk::from_dag_json`] accepts, in bytes (4 MiB). Our bound: a
/// full chunk of 16,384 sha2-256 multihashes is about 1.1 MB of DAG-JSON.
pub const MAX_ENTRY_CHUNK_SIZE: usize = 4 << 20;

/// One chunk of an advertisement's entries: multihashes and the link to the next chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryChunk {
    /// The multihashes of this chunk (`Entries`).
    pub entries: Vec<Multihash<64>>,
    /// The next chunk, `None` for the last (`Next`).
    pub next: Option<Cid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkDe {
    #[serde(rename = "Entries")]
    entries: Vec<BytesDe>,
    #[serde(rename = "Next", default, deserialize_with = "some")]
    next: Option<LinkDe>,
}

impl EntryChunk {
    /// Encodes the chunk as go-libipni does (DAG-JSON, `Entries` then `Next`, `Next` omitted
    /// when absent).
    pub fn to_dag_json(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw("{");
        w.key("Entries", true);
        w.raw("[");
        for (i, mh) in self.entries.iter().enumerate() {
            if i > 0 {
                w.raw(",");
            }
            w.bytes(&mh.to_bytes());
        }
        w.raw("]");
        if let Some(next) = &self.next {
            w.key("Next", false);
            w.link(next);
        }
        w.raw("}");
        w.out.into_bytes()
    }

    /// The chunk's CID: CIDv1, DAG-JSON, sha2-256 of [`EntryChunk::to_dag_json`].
    pub fn cid(&self) -> Cid {
        dagjson::dag_json_cid(&self.to_dag_json())
    }

    /// Decodes a chunk from DAG-JSON.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: over [`MAX_ENTRY_CHUNK_SIZE`], not the schema's shape, or an entry
    /// that is not a multihash (go-libipni keeps such bytes; indexers then drop them).
    pub fn from_dag_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let de: ChunkDe = dagjson::from_slice("entry chunk", bytes, MAX_ENTRY_CHUNK_SIZE)?;
        let entries = de
            .entries
            .iter()
            .enumerate()
            .map(|(index, b)| {
                let raw = b.parse("Entries")?;
                Multihash::<64>::from_bytes(&raw).map_err(|_| DecodeError::Multihash { index })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            entries,
            next: de.next.map(|l| l.parse("Next")).transpose()?,
        })
    }
}

/// One encoded chunk of an [`EntryChain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryBlock {
    /// The block's CID (DAG-JSON, sha2-256).
    pub cid: Cid,
    /// The DAG-JSON bytes, to store and serve at `/ipni/v1/ad/{cid}`.
    pub bytes: Vec<u8>,
    /// Number of multihashes in the chunk.
    pub len: usize,
}

/// The chunks of a list of multihashes, linked as index-provider's `ChainChunker` links them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryChain {
    /// The chunks in the order the chunker creates them: `blocks[0]` holds the first
    /// `chunk_size` multihashes and has no `Next`; each later block links to the one before
    /// it. The last block is the head.
    pub blocks: Vec<EntryBlock>,
}

impl EntryChain {
    /// Splits `multihashes` into chunks of at most `chunk_size` and links them the way
    /// index-provider's `ChainChunker.Chunk` does: chunks are filled in input order, each
    /// new chunk's `Next` is the previous chunk, and the last chunk (holding the remainder, so
    /// possibly short) is the head. Walking from the head therefore yields the input
    /// chunk by chunk from the end; within a chunk the input order is kept.
    ///
    /// # Panics
    ///
    /// If `chunk_size` is 0 (go refuses it too: "chunk size must be at least 1").
    pub fn build(multihashes: &[Multihash<64>], chunk_size: usize) -> Self {
        assert!(chunk_size >= 1, "chunk size must be at least 1");
        let mut blocks: Vec<EntryBlock> =
            Vec::with_capacity(multihashes.len().div_ceil(chunk_size));
        for part in multihashes.chunks(chunk_size) {
            let chunk = EntryChunk {
                entries: part.to_vec(),
                next: blocks.last().map(|b| b.cid),
            };
            let bytes = chunk.to_dag_json();
            blocks.push(EntryBlock {
                cid: dagjson::dag_json_cid(&bytes),
                bytes,
                len: part.len(),
            });
        }
        Self { blocks }
    }

    /// The head chunk's CID, the advertisement's `Entries`; `None` when there were no
    /// multihashes (go's chunker returns a nil link; advertise [`crate::no_entries`] then).
    pub fn head(&self) -> Option<Cid> {
        self.blocks.last().map(|b| b.cid)
    }
}
