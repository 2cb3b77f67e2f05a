//! Helpers shared by the importer's integration tests.

#![allow(dead_code)]

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use hydrant_unixfs::{FileImporter, ImportProfile, Imported, Metadata};
use multihash_codetable::{Code, MultihashDigest};

/// Kubo's `DeterministicRandomReaderBytes(size, seed)` (test/cli/testutils/random_deterministic.go):
/// the ChaCha20 (RFC 8439) keystream under key sha2-256(seed), zero nonce, counter 0. The
/// reference script `interop/bin/unixfs-reference.mjs` makes the same bytes with node's
/// `chacha20` cipher.
pub struct Deterministic {
    cipher: ChaCha20,
    remaining: u64,
}

impl Deterministic {
    /// `size` bytes from `seed`.
    pub fn new(size: u64, seed: &str) -> Self {
        let key = Code::Sha2_256.digest(seed.as_bytes());
        let key: [u8; 32] = key.digest().try_into().expect("32-byte digest");
        Deterministic {
            cipher: ChaCha20::new(&key.into(), &[0u8; 12].into()),
            remaining: size,
        }
    }

    /// Fills up to `buf.len()` bytes; returns how many (0 at the end).
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        buf[..n].fill(0);
        self.cipher.apply_keystream(&mut buf[..n]);
        self.remaining -= n as u64;
        n
    }

    /// All remaining bytes (for small sizes).
    pub fn into_vec(mut self) -> Vec<u8> {
        let mut v = vec![0; usize::try_from(self.remaining).expect("small")];
        self.fill(&mut v);
        v
    }
}

/// Imports `size` deterministic bytes of `seed` as one file, pushing slices of `slice` bytes;
/// drops the blocks (only the root and size are kept).
pub fn import_deterministic(
    profile: &ImportProfile,
    size: u64,
    seed: &str,
    slice: usize,
) -> Imported {
    let mut file = FileImporter::new(profile, Metadata::default()).expect("valid profile");
    let mut source = Deterministic::new(size, seed);
    let mut buf = vec![0u8; slice];
    loop {
        let n = source.fill(&mut buf);
        if n == 0 {
            break;
        }
        drop(file.push(&buf[..n]));
    }
    let mut done = file.finish();
    done.blocks.clear();
    done
}

/// Runs `interop/bin/<script>` once with `input` on its stdin and returns its stdout lines.
/// Fails, with the install hint, when node or `interop/node_modules/<module>` is missing or the
/// script fails.
pub fn run_reference(script: &str, module: &str, input: String) -> Vec<String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    let hint = format!(
        "run `scripts/interop.sh install` (needs node >= 20 and npm) to install \
         interop/node_modules with {module}"
    );
    assert!(
        dir.join("node_modules").join(module).is_dir(),
        "interop/node_modules/{module} is missing: {hint}"
    );
    let mut child = Command::new("node")
        .arg(format!("bin/{script}"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): {hint}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("node runs");
    writer.join().expect("writer").expect("input written");
    assert!(
        out.status.success(),
        "{script} failed: {}\n({hint})",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(str::to_owned)
        .collect()
}
