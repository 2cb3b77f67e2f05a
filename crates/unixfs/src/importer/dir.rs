//! Directories: a flat UnixFS `Directory` node, or a HAMT-sharded directory when the flat
//! node's estimated size is over the profile's threshold.
//!
//! Spec: unixfs.md § "`dag-pb` `Directory`", § "`dag-pb` `HAMTDirectory`" (murmur3-x64-64,
//! link names = bucket index in uppercase hex, padded to the width of `fanout - 1`, then the
//! entry name; a sub-shard's link is the bare index); ipip-0499 § "HAMTDirectory threshold"
//! and § "Why `>` (strictly greater than) for HAMT threshold".
//!
//! boxo (`ipld/unixfs/io/directory.go`) decides at every `AddChild`; an import only adds
//! entries and a subdirectory's link only grows when MFS updates it, so the estimate only
//! grows and the final form is the one of the complete set of entries: a HAMT when the
//! estimate of the flat node is over the threshold. The HAMT (boxo `ipld/unixfs/hamt`) puts a
//! name in the bucket given by the next `log2(fanout)` bits of its hash (most significant
//! first); a bucket holds one entry, or a sub-shard when two or more names share it.

use std::collections::BTreeMap;

use bytes::Bytes;
use cid::Cid;

use super::{Block, HamtEstimation, ImportError, ImportProfile, Imported, Metadata, pb_block};
use crate::path::{HAMT_HASH_BITS, murmur3_x64_64};
use crate::pb::{DataType, PbLink, UnixFsData};

/// Multihash code of murmur3-x64-64, the HAMT hash (`hashType` of every shard).
pub(crate) const HAMT_HASH_MURMUR3: u64 = 0x22;

/// A sans-I/O directory builder: add every entry, then [`finish`](Self::finish).
///
/// Entries are kept in memory (about `name + 50` bytes each) until `finish`, which needs them
/// all: links are sorted by name (bytewise), and whether the directory is flat or a HAMT
/// depends on all of them.
///
/// ```
/// use hydrant_unixfs::{DirectoryBuilder, ImportProfile};
/// let dir = DirectoryBuilder::new(&ImportProfile::unixfs_v0_2015(), Default::default())?;
/// let empty = dir.finish()?;
/// assert_eq!(empty.cid.to_string(), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
/// assert_eq!(empty.size, 4);
/// # Ok::<(), hydrant_unixfs::ImportError>(())
/// ```
#[derive(Debug)]
pub struct DirectoryBuilder {
    profile: ImportProfile,
    metadata: Metadata,
    /// name -> (cid, cumulative size in bytes).
    entries: BTreeMap<String, (Cid, u64)>,
}

impl DirectoryBuilder {
    /// A new, empty directory with optional metadata on its root node.
    ///
    /// # Errors
    /// [`ImportError::Profile`] when the profile is invalid.
    pub fn new(profile: &ImportProfile, metadata: Metadata) -> Result<Self, ImportError> {
        profile.validate()?;
        Ok(DirectoryBuilder {
            profile: *profile,
            metadata,
            entries: BTreeMap::new(),
        })
    }

    /// Adds the entry `name` -> `cid`; `size` is the entry's cumulative size in bytes
    /// ([`Imported::size`] of what was imported), written as the link's `Tsize`.
    ///
    /// # Errors
    /// [`ImportError::InvalidName`] for an empty name, `.`, `..`, or a name with `/` or NUL;
    /// [`ImportError::DuplicateName`] when `name` was already added.
    pub fn add(&mut self, name: &str, cid: Cid, size: u64) -> Result<(), ImportError> {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(ImportError::InvalidName(name.to_string()));
        }
        if self.entries.contains_key(name) {
            return Err(ImportError::DuplicateName(name.to_string()));
        }
        self.entries.insert(name.to_string(), (cid, size));
        Ok(())
    }

    /// Number of entries added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ends the directory: its root CID, cumulative size and blocks (one for a flat directory;
    /// the shards bottom-up, the root last, for a HAMT). It is a HAMT when it has entries and
    /// [`estimated_size`](Self::estimated_size) is over the profile's threshold.
    ///
    /// # Errors
    /// [`ImportError::HamtTooDeep`] when two names of a HAMT share their whole 64-bit hash.
    pub fn finish(self) -> Result<Imported, ImportError> {
        let flat = self.flat_block();
        // boxo decides when an entry is added: an empty directory is always flat.
        let over = match self.profile.hamt_threshold {
            None => false,
            Some(_) if self.entries.is_empty() => false,
            Some(threshold) => self.estimate(&flat) > threshold,
        };
        if !over {
            let size = flat.data.len() as u64 + self.entries.values().map(|e| e.1).sum::<u64>();
            return Ok(Imported {
                cid: flat.cid,
                size,
                blocks: vec![flat],
            });
        }
        let mut root = Shard::default();
        let bits = self.profile.hamt_fanout.trailing_zeros();
        for (name, &(cid, size)) in &self.entries {
            let entry = Entry {
                name: name.clone(),
                cid,
                size,
                hash: murmur3_x64_64(name.as_bytes()),
            };
            root.insert(entry, 0, bits)?;
        }
        let mut blocks = Vec::new();
        let (link_cid, size) = root.write(&self.profile, Some(&self.metadata), &mut blocks);
        Ok(Imported {
            cid: link_cid,
            size,
            blocks,
        })
    }

    /// The flat `Directory` node of all entries, links sorted by name.
    fn flat_block(&self) -> Block {
        let links: Vec<PbLink> = self
            .entries
            .iter()
            .map(|(name, &(cid, size))| PbLink {
                cid,
                name: Some(name.clone()),
                tsize: Some(size),
            })
            .collect();
        let mut data = UnixFsData::new(DataType::Directory);
        self.metadata.apply(&mut data);
        pb_block(&self.profile, &links, &data)
    }

    /// The size in bytes of this directory as a flat node, estimated the profile's way
    /// ([`HamtEstimation`]): what [`finish`](Self::finish) compares with the HAMT threshold.
    pub fn estimated_size(&self) -> u64 {
        self.estimate(&self.flat_block())
    }

    fn estimate(&self, flat: &Block) -> u64 {
        match self.profile.hamt_estimation {
            // boxo `productionLinkSize`: len(name) + cid.ByteLen().
            HamtEstimation::LinksBytes => self
                .entries
                .iter()
                .map(|(name, (cid, _))| (name.len() + cid.encoded_len()) as u64)
                .sum(),
            // boxo `dataFieldSerializedSize` + Σ `linkSerializedSize`: the block's length.
            HamtEstimation::BlockBytes => flat.data.len() as u64,
        }
    }
}

/// One directory entry with its name's hash.
#[derive(Debug)]
struct Entry {
    name: String,
    cid: Cid,
    size: u64,
    /// murmur3-x64-64 of the name.
    hash: u64,
}

/// One HAMT node under construction: bucket index -> what the bucket holds.
#[derive(Debug, Default)]
struct Shard {
    buckets: BTreeMap<u64, Slot>,
}

#[derive(Debug)]
enum Slot {
    Entry(Entry),
    Shard(Box<Shard>),
}

/// The bucket of a hash at a depth where `consumed` bits were used, `bits` bits wide (most
/// significant bits first), or `None` when the hash has no bits left.
pub(crate) fn bucket_index(hash: u64, consumed: u32, bits: u32) -> Option<u64> {
    if consumed + bits > HAMT_HASH_BITS {
        return None;
    }
    Some((hash << consumed) >> (HAMT_HASH_BITS - bits))
}

/// Link name prefix of bucket `index`: uppercase hex, zero-padded to the width of
/// `fanout - 1` (2 digits for fanout 256).
pub(crate) fn bucket_prefix(index: u64, fanout: u16) -> String {
    let width = format!("{:X}", fanout - 1).len();
    format!("{index:0width$X}")
}

impl Shard {
    fn insert(&mut self, entry: Entry, consumed: u32, bits: u32) -> Result<(), ImportError> {
        let Some(index) = bucket_index(entry.hash, consumed, bits) else {
            return Err(ImportError::HamtTooDeep(entry.name, String::new()));
        };
        match self.buckets.remove(&index) {
            None => {
                self.buckets.insert(index, Slot::Entry(entry));
            }
            Some(Slot::Shard(mut child)) => {
                child.insert(entry, consumed + bits, bits)?;
                self.buckets.insert(index, Slot::Shard(child));
            }
            Some(Slot::Entry(other)) => {
                if other.hash == entry.hash {
                    return Err(ImportError::HamtTooDeep(other.name, entry.name));
                }
                let mut child = Box::<Shard>::default();
                child.insert(other, consumed + bits, bits)?;
                child.insert(entry, consumed + bits, bits)?;
                self.buckets.insert(index, Slot::Shard(child));
            }
        }
        Ok(())
    }

    /// Writes this shard and its sub-shards (children first) into `blocks`; returns the
    /// shard's CID and cumulative size. `metadata` is for the root shard only.
    fn write(
        self,
        profile: &ImportProfile,
        metadata: Option<&Metadata>,
        blocks: &mut Vec<Block>,
    ) -> (Cid, u64) {
        let fanout = profile.hamt_fanout;
        let mut links = Vec::with_capacity(self.buckets.len());
        // Bitfield of used buckets: a big-endian integer with bit i set for bucket i
        // (go-bitfield), leading zero bytes dropped.
        let mut bitfield = vec![0u8; usize::from(fanout) / 8];
        for (index, slot) in self.buckets {
            let i = usize::try_from(index).unwrap_or(0);
            let byte = bitfield.len() - 1 - i / 8;
            bitfield[byte] |= 1 << (i % 8);
            let prefix = bucket_prefix(index, fanout);
            links.push(match slot {
                Slot::Entry(e) => PbLink {
                    cid: e.cid,
                    name: Some(prefix + &e.name),
                    tsize: Some(e.size),
                },
                Slot::Shard(child) => {
                    let (cid, size) = child.write(profile, None, blocks);
                    PbLink {
                        cid,
                        name: Some(prefix),
                        tsize: Some(size),
                    }
                }
            });
        }
        let first = bitfield
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bitfield.len());
        let mut data = UnixFsData::new(DataType::HamtShard);
        data.data = Bytes::from(bitfield.split_off(first));
        data.hash_type = Some(HAMT_HASH_MURMUR3);
        data.fanout = Some(u64::from(fanout));
        if let Some(m) = metadata {
            m.apply(&mut data);
        }
        let block = pb_block(profile, &links, &data);
        let size = block.data.len() as u64 + links.iter().filter_map(|l| l.tsize).sum::<u64>();
        let cid = block.cid;
        blocks.push(block);
        (cid, size)
    }
}
