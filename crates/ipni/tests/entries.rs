//! Entry chunking at the chunk-size boundary, and the chunk encoding.

use hydrant_ipni::{DEFAULT_CHUNK_SIZE, EntryChain, EntryChunk, dag_json_cid};
use multihash::Multihash;
use multihash_codetable::{Code, MultihashDigest};

fn mhs(n: usize) -> Vec<Multihash<64>> {
    (0..n as u64)
        .map(|i| Code::Sha2_256.digest(&i.to_be_bytes()))
        .collect()
}

fn walk(chain: &EntryChain) -> Vec<EntryChunk> {
    let mut out = Vec::new();
    let mut next = chain.head();
    while let Some(cid) = next {
        let block = chain.blocks.iter().find(|b| b.cid == cid).unwrap();
        assert_eq!(dag_json_cid(&block.bytes), cid);
        let chunk = EntryChunk::from_dag_json(&block.bytes).unwrap();
        assert_eq!(chunk.entries.len(), block.len);
        assert_eq!(chunk.to_dag_json(), block.bytes);
        next = chunk.next;
        out.push(chunk);
    }
    out
}

#[test]
fn exactly_one_full_chunk() {
    let input = mhs(DEFAULT_CHUNK_SIZE);
    let chain = EntryChain::build(&input, DEFAULT_CHUNK_SIZE);
    assert_eq!(chain.blocks.len(), 1);
    let chunks = walk(&chain);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].next, None);
    assert_eq!(chunks[0].entries, input);
}

#[test]
fn one_over_makes_a_second_chunk_at_the_head() {
    let input = mhs(DEFAULT_CHUNK_SIZE + 1);
    let chain = EntryChain::build(&input, DEFAULT_CHUNK_SIZE);
    assert_eq!(chain.blocks.len(), 2);
    // As index-provider's ChainChunker: the first 16,384 go into the first chunk stored (no
    // Next); the remainder chunk links to it and is the head.
    assert_eq!(chain.blocks[0].len, DEFAULT_CHUNK_SIZE);
    assert_eq!(chain.blocks[1].len, 1);
    assert_eq!(chain.head(), Some(chain.blocks[1].cid));
    let chunks = walk(&chain);
    assert_eq!(chunks[0].entries, input[DEFAULT_CHUNK_SIZE..]);
    assert_eq!(chunks[0].next, Some(chain.blocks[0].cid));
    assert_eq!(chunks[1].entries, input[..DEFAULT_CHUNK_SIZE]);
    assert_eq!(chunks[1].next, None);
    // A full chunk of sha2-256 multihashes stays well under the decode limit.
    assert!(chain.blocks[0].bytes.len() < hydrant_ipni::MAX_ENTRY_CHUNK_SIZE / 2);
}

#[test]
fn small_chunks_and_empty_input() {
    let input = mhs(10);
    let chain = EntryChain::build(&input, 3);
    assert_eq!(
        chain.blocks.iter().map(|b| b.len).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    let flat: Vec<_> = walk(&chain)
        .into_iter()
        .rev()
        .flat_map(|c| c.entries)
        .collect();
    assert_eq!(flat, input);
    assert_eq!(EntryChain::build(&[], 3).head(), None);
}

#[test]
fn chunk_encoding_shape() {
    let chunk = EntryChunk {
        entries: mhs(1),
        next: None,
    };
    let text = String::from_utf8(chunk.to_dag_json()).unwrap();
    assert!(
        text.starts_with(r#"{"Entries":[{"/":{"bytes":"Ei"#),
        "{text}"
    );
    assert!(text.ends_with("\"}}]}"));
    assert!(!text.contains('='));
}
