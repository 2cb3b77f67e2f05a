//! The one block verifier: does `data` hash to this multihash? Used by ingest (every block of
//! every CAR), by block reads with `read.verify`, and by Bitswap to build a CID from a
//! 1.1.0 prefix, so a block accepted on one path is accepted on all of them.
//!
//! The digest rule is boxo's `verifcid` (what Kubo enforces): a truncated digest is accepted
//! when it is at least [`MIN_DIGEST_LEN`] bytes and compared with the same-length prefix of the
//! computed digest (go-multihash allows truncation). An identity "digest" is the block itself,
//! at most 64 bytes (what a [`Multihash`] holds; boxo allows 128, but no CID of ours can carry
//! more than 64).
//!
//! Spec: carv1.md "Security and Verifiability"; bitswap-protocol.md "Block" (1.1.0 prefixes
//! carry the digest length); the multihash codes of `specs/multicodec-table.csv`.

use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

use crate::Multihash;
use crate::codes::IDENTITY;

/// Shortest digest accepted, bytes (boxo `verifcid.MinDigestSize`): anything shorter is too
/// easy to collide.
pub const MIN_DIGEST_LEN: usize = 20;

/// Why no block can be checked against a multihash (whatever its data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The hash function is not one Hydrant computes: sha2-256, sha2-512, blake2b-256,
    /// blake2b-512, blake3, and identity.
    #[error("unsupported multihash code {0:#x}")]
    UnsupportedHash(u64),
    /// The digest length is outside `min..=max` bytes for this function.
    #[error("a {len}-byte digest does not fit multihash code {code:#x} ({min} to {max} bytes)")]
    Length {
        /// The multihash code.
        code: u64,
        /// The digest length asked for, bytes.
        len: usize,
        /// Shortest allowed, bytes.
        min: usize,
        /// Longest allowed, bytes (the function's output; for identity, the data's length).
        max: usize,
    },
}

/// Why [`verify_block`] refused a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The block's data does not hash to the digest in its CID.
    #[error("block data does not match the hash in {cid}")]
    Mismatch {
        /// The CID the block was stored under.
        cid: Cid,
    },
    /// The CID's multihash cannot be checked (unsupported function or digest length).
    #[error("{cid}: {reason}")]
    Unverifiable {
        /// The CID the block was stored under.
        cid: Cid,
        /// Why.
        reason: DigestError,
    },
}

/// The multihash of `data` under function `code`, truncated to `len` bytes: how a Bitswap
/// 1.1.0 prefix (code and digest length) becomes a CID. For identity, `len` must equal the
/// data's length.
///
/// # Errors
/// [`DigestError`] when `code` is not computed here or `len` is outside the rule above.
pub fn digest(code: u64, len: usize, data: &[u8]) -> Result<Multihash, DigestError> {
    if code == IDENTITY {
        let refused = DigestError::Length {
            code,
            len,
            min: data.len(),
            max: data.len(),
        };
        if len != data.len() {
            return Err(refused);
        }
        return Multihash::wrap(IDENTITY, data).map_err(|_| refused);
    }
    let full = function(code)?.digest(data);
    check_len(code, len, full.digest().len())?;
    Ok(full.truncate(len as u8))
}

/// Checks that `data` is the block `multihash` names.
///
/// # Errors
/// `Ok(false)` is a mismatch; [`DigestError`] when the multihash cannot be checked at all.
pub fn matches(multihash: &Multihash, data: &[u8]) -> Result<bool, DigestError> {
    let code = multihash.code();
    let expected = multihash.digest();
    if code == IDENTITY {
        return Ok(expected == data);
    }
    let function = function(code)?;
    let computed = function.digest(data);
    let computed = computed.digest();
    check_len(code, expected.len(), computed.len())?;
    Ok(&computed[..expected.len()] == expected)
}

/// Checks that `data` is the block `cid` names, by recomputing its multihash.
///
/// # Errors
/// [`VerifyError::Mismatch`] when it is not; [`VerifyError::Unverifiable`] for a hash function
/// Hydrant does not compute or a digest length outside the rule (never a silent pass).
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), VerifyError> {
    match matches(cid.hash(), data) {
        Ok(true) => Ok(()),
        Ok(false) => Err(VerifyError::Mismatch { cid: *cid }),
        Err(reason) => Err(VerifyError::Unverifiable { cid: *cid, reason }),
    }
}

fn function(code: u64) -> Result<Code, DigestError> {
    Code::try_from(code).map_err(|_| DigestError::UnsupportedHash(code))
}

fn check_len(code: u64, len: usize, max: usize) -> Result<(), DigestError> {
    let min = MIN_DIGEST_LEN.min(max);
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(DigestError::Length {
            code,
            len,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{RAW, SHA2_256};
    use proptest::prelude::*;

    fn cid_for(code: u64, data: &[u8]) -> Cid {
        let mh = Code::try_from(code).expect("known code").digest(data);
        Cid::new_v1(RAW, mh)
    }

    fn truncated(data: &[u8], len: usize) -> Cid {
        let full = Code::Sha2_256.digest(data);
        Cid::new_v1(
            RAW,
            Multihash::wrap(SHA2_256, &full.digest()[..len]).expect("fits"),
        )
    }

    #[test]
    fn sha2_256_known_vector() {
        // sha2-256("abc")
        let digest: Vec<u8> = (0..32)
            .map(|i| {
                let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")
            })
            .collect();
        let cid = Cid::new_v1(RAW, Multihash::wrap(SHA2_256, &digest).expect("32 bytes"));
        assert_eq!(verify_block(&cid, b"abc"), Ok(()));
        assert_eq!(
            verify_block(&cid, b"abd"),
            Err(VerifyError::Mismatch { cid })
        );
    }

    #[test]
    fn identity() {
        let cid = Cid::new_v1(RAW, Multihash::wrap(IDENTITY, b"hello").expect("small"));
        assert_eq!(verify_block(&cid, b"hello"), Ok(()));
        assert_eq!(
            verify_block(&cid, b"hellO"),
            Err(VerifyError::Mismatch { cid })
        );
        let empty = Cid::new_v1(RAW, Multihash::wrap(IDENTITY, b"").expect("empty"));
        assert_eq!(verify_block(&empty, b""), Ok(()));
    }

    #[test]
    fn unsupported_code_is_an_error() {
        // sha3-256 (0x16) is not enabled in the workspace.
        let cid = Cid::new_v1(RAW, Multihash::wrap(0x16, &[0u8; 32]).expect("32 bytes"));
        assert_eq!(
            verify_block(&cid, b""),
            Err(VerifyError::Unverifiable {
                cid,
                reason: DigestError::UnsupportedHash(0x16)
            })
        );
    }

    #[test]
    fn truncated_digests_follow_one_rule() {
        // 20 bytes and more: compared with the computed digest's prefix.
        assert_eq!(verify_block(&truncated(b"data", 20), b"data"), Ok(()));
        assert!(matches!(
            verify_block(&truncated(b"data", 20), b"date"),
            Err(VerifyError::Mismatch { .. })
        ));
        // Shorter: refused whatever the data, as boxo's verifcid does.
        for len in [0, 1, 19] {
            let cid = truncated(b"data", len);
            assert_eq!(
                verify_block(&cid, b"data"),
                Err(VerifyError::Unverifiable {
                    cid,
                    reason: DigestError::Length {
                        code: SHA2_256,
                        len,
                        min: 20,
                        max: 32
                    }
                })
            );
        }
        let long = Cid::new_v1(
            RAW,
            Multihash::wrap(SHA2_256, &[0u8; 33]).expect("33 bytes"),
        );
        assert!(matches!(
            verify_block(&long, b"data"),
            Err(VerifyError::Unverifiable {
                reason: DigestError::Length { len: 33, .. },
                ..
            })
        ));
    }

    #[test]
    fn digest_builds_what_verify_accepts() {
        let mh = digest(SHA2_256, 24, b"data").expect("24 bytes is allowed");
        assert_eq!(mh.size(), 24);
        assert_eq!(matches(&mh, b"data"), Ok(true));
        assert!(digest(SHA2_256, 19, b"data").is_err());
        assert!(digest(SHA2_256, 33, b"data").is_err());
        assert!(digest(0x16, 32, b"data").is_err());
        assert_eq!(
            digest(IDENTITY, 4, b"data").map(|m| m.digest().to_vec()),
            Ok(b"data".to_vec())
        );
        assert!(digest(IDENTITY, 3, b"data").is_err());
    }

    proptest! {
        #[test]
        fn every_enabled_hash_verifies_and_detects_a_flip(
            code in prop::sample::select(vec![0x12u64, 0x13, 0xb220, 0xb240, 0x1e]),
            data in proptest::collection::vec(any::<u8>(), 1..2048),
            flip in any::<prop::sample::Index>(),
        ) {
            let cid = cid_for(code, &data);
            prop_assert_eq!(verify_block(&cid, &data), Ok(()));
            let mut bad = data.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 0x01;
            prop_assert_eq!(verify_block(&cid, &bad), Err(VerifyError::Mismatch { cid }));
        }
    }
}
