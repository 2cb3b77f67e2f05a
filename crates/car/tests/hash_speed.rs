//! sha2-256 throughput of `verify_block` compared with `openssl dgst -sha256` on the same data.
//! Ignored by default (it times things); run with
//! `cargo test -p hydrant-car --test hash_speed -- --ignored --nocapture`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use cid::Cid;
use hydrant_car::verify_block;
use multihash_codetable::{Code, MultihashDigest};

/// Bytes hashed per measurement.
const TOTAL: usize = 128 * 1024 * 1024;
/// Block size used, bytes (the common 1 MiB chunk).
const BLOCK: usize = 1024 * 1024;

#[test]
#[ignore = "timing test; run explicitly"]
fn sha256_verify_keeps_up_with_openssl() {
    let block: Vec<u8> = (0..BLOCK).map(|i| (i * 31 % 251) as u8).collect();
    let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&block));

    let start = Instant::now();
    for _ in 0..TOTAL / BLOCK {
        verify_block(&cid, &block).expect("verifies");
    }
    let ours = TOTAL as f64 / start.elapsed().as_secs_f64() / 1e6;

    // openssl reads the same bytes from a file (a pipe would slow it down).
    let path = std::env::temp_dir().join(format!("hydrant-car-hash-speed-{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&path).expect("temp file");
        for _ in 0..TOTAL / BLOCK {
            file.write_all(&block).expect("write temp file");
        }
    }
    let start = Instant::now();
    let status = Command::new("openssl")
        .args(["dgst", "-sha256"])
        .arg(&path)
        .stdout(Stdio::null())
        .status();
    let elapsed = start.elapsed();
    std::fs::remove_file(&path).expect("remove temp file");
    if !status.is_ok_and(|s| s.success()) {
        println!("verify_block sha2-256: {ours:.0} MB/s (openssl not available)");
        return;
    }
    let openssl = TOTAL as f64 / elapsed.as_secs_f64() / 1e6;

    println!("verify_block sha2-256: {ours:.0} MB/s; openssl dgst -sha256: {openssl:.0} MB/s");
    assert!(
        ours > openssl * 0.6,
        "sha2-256 is much slower than openssl: SHA extensions not used?"
    );
}
