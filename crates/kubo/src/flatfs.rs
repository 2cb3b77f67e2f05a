//! go-ds-flatfs, as Kubo lays out its blockstore (`blocks/`): one file per block,
//! `<shard>/<KEY>.data`, where `KEY` is the block's multihash in unpadded upper-case RFC 4648
//! base32 (boxo's `dshelp.MultihashToDsKey`; keys are multihashes, not CIDs, since Kubo 0.12)
//! and `<shard>` is a function of `KEY` named in `blocks/SHARDING`.

use std::path::{Path, PathBuf};

use data_encoding::BASE32_NOPAD;
use hydrant_blocks::Multihash;

use crate::repo::{KuboError, io_error};

/// File name suffix of a block.
const DATA_SUFFIX: &str = ".data";

/// A flatfs shard function (go-ds-flatfs `shard.go`), as `SHARDING` names it:
/// `/repo/flatfs/shard/v1/<name>/<n>`. Short keys are padded with `_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shard {
    /// The first `n` characters (`prefix`).
    Prefix(usize),
    /// The last `n` characters (`suffix`).
    Suffix(usize),
    /// The `n` characters before the last one (`next-to-last`; Kubo's default, n = 2).
    NextToLast(usize),
}

impl Shard {
    /// Parses the contents of a `SHARDING` file (surrounding whitespace ignored); `None` for
    /// anything else, or a length outside 1..=16.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix("/repo/flatfs/shard/v1/")?;
        let (name, n) = rest.split_once('/')?;
        let n: usize = n.parse().ok().filter(|n| (1..=16).contains(n))?;
        match name {
            "prefix" => Some(Self::Prefix(n)),
            "suffix" => Some(Self::Suffix(n)),
            "next-to-last" => Some(Self::NextToLast(n)),
            _ => None,
        }
    }

    /// The directory name of `key` (go-ds-flatfs works on bytes; keys are ASCII, and other
    /// text is taken by characters here, so that no input panics).
    pub fn dir(&self, key: &str) -> String {
        let pad = |n: usize| std::iter::repeat_n('_', n);
        match *self {
            Self::Prefix(n) => key.chars().chain(pad(n)).take(n).collect(),
            Self::Suffix(n) => {
                let padded: Vec<char> = pad(n).chain(key.chars()).collect();
                padded[padded.len() - n..].iter().collect()
            }
            Self::NextToLast(n) => {
                let padded: Vec<char> = pad(n + 1).chain(key.chars()).collect();
                let offset = padded.len() - n - 1;
                padded[offset..offset + n].iter().collect()
            }
        }
    }
}

/// The flatfs key of a multihash.
pub fn key_of(multihash: &Multihash) -> String {
    BASE32_NOPAD.encode(&multihash.to_bytes())
}

/// The multihash a flatfs key names, `None` when `key` is not the canonical base32 of exactly
/// one multihash (a pre-0.12 CID key, a temporary file, a stray name).
pub fn parse_key(key: &str) -> Option<Multihash> {
    let bytes = BASE32_NOPAD.decode(key.as_bytes()).ok()?;
    let multihash = Multihash::from_bytes(&bytes).ok()?;
    (BASE32_NOPAD.encode(&bytes) == key).then_some(multihash)
}

/// The path of the block `multihash` under the flatfs directory `blocks`.
pub fn block_path(blocks: &Path, shard: Shard, multihash: &Multihash) -> PathBuf {
    let key = key_of(multihash);
    blocks
        .join(shard.dir(&key))
        .join(format!("{key}{DATA_SUFFIX}"))
}

/// One `*.data` file of the blockstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFile {
    /// Its path.
    pub path: PathBuf,
    /// The multihash its name holds; `None` when the name is not a block key.
    pub multihash: Option<Multihash>,
}

/// Every `*.data` file under `blocks` (one level of shard directories), shard directories and
/// files each in byte order of their names, so that two runs over the same repository see the
/// same order. Memory: the names of one shard directory at a time.
///
/// # Errors
/// [`KuboError::Io`] when a directory cannot be listed (at the first call of `next` that
/// needs it).
pub fn block_files(blocks: &Path) -> Result<BlockFiles, KuboError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(blocks).map_err(io_error(blocks))? {
        let entry = entry.map_err(io_error(blocks))?;
        if entry.file_type().map_err(io_error(blocks))?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    dirs.reverse();
    Ok(BlockFiles {
        dirs,
        files: Vec::new(),
    })
}

/// The iterator of [`block_files`].
#[derive(Debug)]
pub struct BlockFiles {
    /// Shard directories still to list, last first.
    dirs: Vec<PathBuf>,
    /// Files of the current directory still to yield, last first.
    files: Vec<BlockFile>,
}

impl Iterator for BlockFiles {
    type Item = Result<BlockFile, KuboError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(file) = self.files.pop() {
                return Some(Ok(file));
            }
            let dir = self.dirs.pop()?;
            let listing = match std::fs::read_dir(&dir) {
                Ok(listing) => listing,
                Err(e) => return Some(Err(io_error(&dir)(e))),
            };
            for entry in listing {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => return Some(Err(io_error(&dir)(e))),
                };
                let name = entry.file_name();
                let Some(key) = name.to_str().and_then(|n| n.strip_suffix(DATA_SUFFIX)) else {
                    continue;
                };
                self.files.push(BlockFile {
                    multihash: parse_key(key),
                    path: entry.path(),
                });
            }
            self.files.sort_by(|a, b| b.path.cmp(&a.path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_functions_match_go_ds_flatfs() {
        let key = "CIQJZPAOXMSP6Z6UE4WFIX2XGCXKSXM7WBQ3ZQXHBL6ACUTAQOSMRJI";
        assert_eq!(
            Shard::parse("/repo/flatfs/shard/v1/next-to-last/2\n"),
            Some(Shard::NextToLast(2))
        );
        assert_eq!(Shard::NextToLast(2).dir(key), "RJ");
        assert_eq!(Shard::Prefix(4).dir(key), "CIQJ");
        assert_eq!(Shard::Suffix(3).dir(key), "RJI");
        assert_eq!(Shard::NextToLast(2).dir("A"), "__");
        assert_eq!(Shard::Prefix(3).dir("A"), "A__");
        assert_eq!(Shard::parse("/repo/flatfs/shard/v1/other/2"), None);
        assert_eq!(Shard::parse("/repo/flatfs/shard/v1/prefix/0"), None);
    }

    #[test]
    fn keys_are_canonical_base32_multihashes() {
        let key = "CIQJZPAOXMSP6Z6UE4WFIX2XGCXKSXM7WBQ3ZQXHBL6ACUTAQOSMRJI";
        let multihash = parse_key(key).expect("a sha2-256 key");
        assert_eq!(multihash.code(), 0x12);
        assert_eq!(key_of(&multihash), key);
        assert_eq!(parse_key(&key.to_lowercase()), None);
        assert_eq!(parse_key(&key[..key.len() - 1]), None);
        // A CIDv1 key of a pre-0.12 repository.
        assert_eq!(parse_key("AFYBEI"), None);
        assert_eq!(parse_key(""), None);
    }

    #[test]
    fn block_files_are_listed_in_order_with_their_multihashes() {
        let dir = tempfile::tempdir().unwrap();
        let key = "CIQJZPAOXMSP6Z6UE4WFIX2XGCXKSXM7WBQ3ZQXHBL6ACUTAQOSMRJI";
        let multihash = parse_key(key).unwrap();
        let path = block_path(dir.path(), Shard::NextToLast(2), &multihash);
        assert_eq!(path, dir.path().join("RJ").join(format!("{key}.data")));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
        std::fs::create_dir(dir.path().join("AB")).unwrap();
        std::fs::write(dir.path().join("AB/NOT-A-KEY.data"), b"y").unwrap();
        std::fs::write(dir.path().join("AB/put-123"), b"z").unwrap();
        std::fs::write(dir.path().join("SHARDING"), b"").unwrap();
        let files: Vec<_> = block_files(dir.path())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            files,
            [
                BlockFile {
                    path: dir.path().join("AB/NOT-A-KEY.data"),
                    multihash: None
                },
                BlockFile {
                    path,
                    multihash: Some(multihash)
                },
            ]
        );
    }
}
