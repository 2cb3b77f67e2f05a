//! Import profiles: every parameter that changes the CIDs of an import.
//!
//! Spec: ipip-0499-unixfs-cid-profiles.md § "The `unixfs-v1-2025` modern profile" and
//! § "The `unixfs-v0-2015` legacy profile"; § "UnixFS parameters" for what each one means.

use hydrant_blocks::codes::SHA2_256;

/// How the size of a flat directory is estimated before deciding to shard it into a HAMT.
///
/// Spec: ipip-0499 § "UnixFS parameters" item 8 and § "Why `block-bytes` estimation for
/// `unixfs-v1-2025`".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HamtEstimation {
    /// `links-bytes`: the sum over entries of the name's UTF-8 length plus the binary CID's
    /// length, in bytes (boxo `SizeEstimationLinks`, Kubo's legacy rule).
    LinksBytes,
    /// `block-bytes`: the exact length in bytes of the serialized flat directory block,
    /// `Tsize`s, protobuf framing and `mode`/`mtime` included (boxo `SizeEstimationBlock`).
    BlockBytes,
}

/// Every parameter of a UnixFS import that changes its CIDs.
///
/// Start from [`ImportProfile::unixfs_v1_2025`] (also [`Default`]) or
/// [`ImportProfile::unixfs_v0_2015`] and override fields as needed; the importers check the
/// result with [`ImportProfile::validate`].
///
/// Spec: ipip-0499 § "Detailed design". Not parameters here, because they are the caller's
/// walk of the file system: empty directories (always kept), hidden files, symlinks (kept as
/// UnixFS `Symlink` nodes by [`crate::symlink_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImportProfile {
    /// CID version of dag-pb blocks: 0 (base58 `Qm…`, dag-pb and sha2-256 only) or 1. Raw
    /// leaves are always CIDv1 (raw codec), as in boxo.
    pub cid_version: u8,
    /// Multihash code of every block (`0x12`, sha2-256, in both profiles; also accepted:
    /// sha2-512 `0x13`, blake2b-256 `0xb220`, blake2b-512 `0xb240`, blake3 `0x1e`, with their
    /// full digest length). CIDv0 requires sha2-256.
    pub hash: u64,
    /// File leaves as raw blocks (codec 0x55) rather than dag-pb UnixFS `File` nodes.
    pub raw_leaves: bool,
    /// Fixed chunk size, bytes: every leaf holds this many bytes of the file, the last one
    /// fewer. From 1 to [`MAX_CHUNK_SIZE`] (boxo's limit).
    pub chunk_size: usize,
    /// Most links of one file node (the balanced DAG's width), at least 2.
    pub max_links: usize,
    /// A flat directory whose estimated size in bytes is strictly greater than this becomes a
    /// HAMT; `None` never shards.
    pub hamt_threshold: Option<u64>,
    /// How a flat directory's size is estimated for [`hamt_threshold`](Self::hamt_threshold).
    pub hamt_estimation: HamtEstimation,
    /// Buckets per HAMT shard: a power of two, a multiple of 8, at most 1024.
    pub hamt_fanout: u16,
}

/// Largest chunk boxo accepts, bytes (`chunker.ChunkSizeLimit`: the 2 MiB block limit less
/// 256 bytes for the framing of dag-pb leaves).
pub const MAX_CHUNK_SIZE: usize = 2 * 1024 * 1024 - 256;

/// Why an [`ImportProfile`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A field is out of range; the message says which and why.
    #[error("invalid import profile: {0}")]
    Invalid(&'static str),
    /// An override ([`ProfileOverrides`]) does not parse; the message names the option and
    /// the value.
    #[error("{0}")]
    Option(String),
}

/// Kubo's `add` options over a profile's parameters (`--cid-version`, `--raw-leaves`,
/// `--chunker`, `--max-links`, `--hash`); `None` keeps the profile's value.
#[derive(Debug, Clone, Default)]
pub struct ProfileOverrides {
    /// CID version, 0 or 1.
    pub cid_version: Option<u8>,
    /// Raw leaves or dag-pb leaves.
    pub raw_leaves: Option<bool>,
    /// Kubo's chunker string; only `size-<bytes>` (the fixed-size chunker) is supported.
    pub chunker: Option<String>,
    /// Most links per file node.
    pub max_links: Option<usize>,
    /// Multihash function by its multicodec name: `sha2-256`, `sha2-512`, `blake2b-256`,
    /// `blake2b-512`, `blake3`.
    pub hash: Option<String>,
}

impl ImportProfile {
    /// `unixfs-v1-2025`: CIDv1, sha2-256, raw leaves, 1 MiB (1 048 576-byte) chunks, 1024
    /// links per file node, HAMT (fanout 256) when the flat directory block would be more than
    /// 256 KiB (262 144 bytes, `block-bytes`).
    ///
    /// Spec: ipip-0499 § "The `unixfs-v1-2025` modern profile".
    pub const fn unixfs_v1_2025() -> Self {
        ImportProfile {
            cid_version: 1,
            hash: SHA2_256,
            raw_leaves: true,
            chunk_size: 1_048_576,
            max_links: 1024,
            hamt_threshold: Some(262_144),
            hamt_estimation: HamtEstimation::BlockBytes,
            hamt_fanout: 256,
        }
    }

    /// `unixfs-v0-2015` (Kubo's default through 0.39): CIDv0, sha2-256, dag-pb leaves, 256 KiB
    /// (262 144-byte) chunks, 174 links per file node, HAMT (fanout 256) when the names and CIDs
    /// of the entries add up to more than 256 KiB (`links-bytes`, compared with `>` as in
    /// boxo since v0.36 / Kubo 0.40).
    ///
    /// Spec: ipip-0499 § "The `unixfs-v0-2015` legacy profile".
    pub const fn unixfs_v0_2015() -> Self {
        ImportProfile {
            cid_version: 0,
            hash: SHA2_256,
            raw_leaves: false,
            chunk_size: 262_144,
            max_links: 174,
            hamt_threshold: Some(262_144),
            hamt_estimation: HamtEstimation::LinksBytes,
            hamt_fanout: 256,
        }
    }

    /// The profile named `name` (`unixfs-v1-2025` or `unixfs-v0-2015`), if it is one.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "unixfs-v1-2025" => Some(Self::unixfs_v1_2025()),
            "unixfs-v0-2015" => Some(Self::unixfs_v0_2015()),
            _ => None,
        }
    }

    /// This profile with `overrides` applied as Kubo applies its `add` options: a hash other
    /// than sha2-256 without an explicit CID version means CIDv1, and without an explicit
    /// `raw_leaves` CIDv1 means raw leaves and CIDv0 dag-pb leaves. The result is validated.
    ///
    /// # Errors
    /// [`ProfileError::Option`] for a chunker other than `size-<bytes>` or an unknown hash
    /// name; [`ProfileError::Invalid`] when the result is out of range.
    pub fn with_overrides(mut self, overrides: &ProfileOverrides) -> Result<Self, ProfileError> {
        if let Some(name) = &overrides.hash {
            self.hash = hash_code(name).ok_or_else(|| {
                ProfileError::Option(format!(
                    "hash {name:?} is not supported: use sha2-256, sha2-512, blake2b-256, \
                     blake2b-512 or blake3"
                ))
            })?;
        }
        let version = overrides
            .cid_version
            .or((self.hash != SHA2_256 && self.cid_version == 0).then_some(1));
        if let Some(version) = version {
            self.cid_version = version;
            self.raw_leaves = version == 1;
        }
        if let Some(raw) = overrides.raw_leaves {
            self.raw_leaves = raw;
        }
        if let Some(chunker) = &overrides.chunker {
            self.chunk_size = chunker
                .strip_prefix("size-")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    ProfileError::Option(format!(
                        "chunker {chunker:?} is not supported: only size-<bytes> (fixed-size \
                         chunks)"
                    ))
                })?;
        }
        if let Some(links) = overrides.max_links {
            self.max_links = links;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks every field against the ranges documented on it.
    ///
    /// # Errors
    /// [`ProfileError::Invalid`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |why| Err(ProfileError::Invalid(why));
        if self.cid_version > 1 {
            return invalid("cid_version must be 0 or 1");
        }
        if self.cid_version == 0 && self.hash != SHA2_256 {
            return invalid("CIDv0 requires sha2-256");
        }
        if hydrant_blocks::digest(self.hash, digest_len(self.hash), b"").is_err() {
            return invalid("hash must be sha2-256, sha2-512, blake2b-256, blake2b-512 or blake3");
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return invalid("chunk_size must be between 1 byte and 2 MiB - 256 bytes");
        }
        if self.max_links < 2 {
            return invalid("max_links must be at least 2");
        }
        let f = self.hamt_fanout;
        if !f.is_power_of_two() || !f.is_multiple_of(8) || f > 1024 {
            return invalid("hamt_fanout must be a power of two, a multiple of 8, at most 1024");
        }
        Ok(())
    }
}

impl Default for ImportProfile {
    /// [`ImportProfile::unixfs_v1_2025`], the profile IPIP-0499 says implementations MUST
    /// support.
    fn default() -> Self {
        Self::unixfs_v1_2025()
    }
}

/// The multihash code of a hash function by its multicodec name, if the importer supports it.
fn hash_code(name: &str) -> Option<u64> {
    Some(match name {
        "sha2-256" => SHA2_256,
        "sha2-512" => 0x13,
        "blake2b-256" => 0xb220,
        "blake2b-512" => 0xb240,
        "blake3" => 0x1e,
        _ => return None,
    })
}

/// Full digest length in bytes of the hash functions [`ImportProfile::hash`] accepts.
pub(crate) fn digest_len(code: u64) -> usize {
    match code {
        0x13 | 0xb240 => 64,
        _ => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_follow_kubo() {
        let v0 = ImportProfile::unixfs_v0_2015();
        let v1 = v0
            .with_overrides(&ProfileOverrides {
                cid_version: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert!(v1.raw_leaves, "CIDv1 without --raw-leaves means raw leaves");
        assert_eq!(v1.chunk_size, 262_144, "the rest of the profile stays");
        let blake3 = v0
            .with_overrides(&ProfileOverrides {
                hash: Some("blake3".into()),
                raw_leaves: Some(false),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((blake3.cid_version, blake3.hash), (1, 0x1e));
        assert!(!blake3.raw_leaves, "an explicit --raw-leaves wins");
        let chunked = v0
            .with_overrides(&ProfileOverrides {
                chunker: Some("size-1000".into()),
                max_links: Some(3),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((chunked.chunk_size, chunked.max_links), (1000, 3));

        let rabin = v0.with_overrides(&ProfileOverrides {
            chunker: Some("rabin".into()),
            ..Default::default()
        });
        assert!(rabin.unwrap_err().to_string().contains("\"rabin\""));
        let md5 = v0.with_overrides(&ProfileOverrides {
            hash: Some("md5".into()),
            ..Default::default()
        });
        assert!(md5.unwrap_err().to_string().contains("\"md5\""));
        let v0_blake3 = v0.with_overrides(&ProfileOverrides {
            cid_version: Some(0),
            hash: Some("blake3".into()),
            ..Default::default()
        });
        assert_eq!(
            v0_blake3.unwrap_err(),
            ProfileError::Invalid("CIDv0 requires sha2-256")
        );
    }
}
