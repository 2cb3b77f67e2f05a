//! Block hash verification: recompute a block's multihash and compare it with its CID.

use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

use crate::error::VerifyError;

/// Multihash code of the identity "hash", whose digest is the data itself.
const IDENTITY: u64 = 0x00;

/// Checks that `data` is the block that `cid` names, by recomputing its multihash.
///
/// Supported functions: identity (0x00: the digest must equal `data`), sha2-256 (0x12),
/// sha2-512 (0x13), blake2b-256 (0xb220), blake2b-512 (0xb240) and blake3 (0x1e, 32-byte
/// output), i.e. everything the workspace's `multihash-codetable` features enable.
/// sha2-256 uses the CPU's SHA extensions when present (runtime detection in `sha2`).
///
/// A digest shorter than the function's output (a truncated multihash, as go-multihash allows)
/// is compared with the same-length prefix of the computed digest.
///
/// Spec: carv1.md "Security and Verifiability"; the multihash table in
/// `specs/multicodec-table.csv`.
///
/// # Errors
///
/// - [`VerifyError::UnsupportedHash`] for any other multihash code (never a silent pass);
/// - [`VerifyError::DigestLength`] for an empty digest (other than identity) or one longer
///   than the function produces;
/// - [`VerifyError::Mismatch`] when the data does not hash to the CID's digest.
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), VerifyError> {
    let hash = cid.hash();
    let digest = hash.digest();
    if hash.code() == IDENTITY {
        return if digest == data {
            Ok(())
        } else {
            Err(VerifyError::Mismatch { cid: *cid })
        };
    }
    let code = Code::try_from(hash.code()).map_err(|_| VerifyError::UnsupportedHash {
        cid: *cid,
        code: hash.code(),
    })?;
    let computed = code.digest(data);
    let full = computed.digest();
    if digest.is_empty() || digest.len() > full.len() {
        return Err(VerifyError::DigestLength {
            cid: *cid,
            len: digest.len(),
            max: full.len(),
        });
    }
    if &full[..digest.len()] == digest {
        Ok(())
    } else {
        Err(VerifyError::Mismatch { cid: *cid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash::Multihash;
    use proptest::prelude::*;

    const RAW: u64 = 0x55;

    fn cid_for(code: u64, data: &[u8]) -> Cid {
        let mh = Code::try_from(code).expect("known code").digest(data);
        Cid::new_v1(RAW, mh)
    }

    #[test]
    fn sha2_256_known_vector() {
        // sha2-256("abc")
        let digest = hex_digest("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let cid = Cid::new_v1(RAW, Multihash::wrap(0x12, &digest).expect("32 bytes"));
        assert_eq!(verify_block(&cid, b"abc"), Ok(()));
        assert_eq!(
            verify_block(&cid, b"abd"),
            Err(VerifyError::Mismatch { cid })
        );
    }

    fn hex_digest(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn identity() {
        let cid = Cid::new_v1(RAW, Multihash::wrap(0, b"hello").expect("small"));
        assert_eq!(verify_block(&cid, b"hello"), Ok(()));
        assert_eq!(
            verify_block(&cid, b"hellO"),
            Err(VerifyError::Mismatch { cid })
        );
        let empty = Cid::new_v1(RAW, Multihash::wrap(0, b"").expect("empty"));
        assert_eq!(verify_block(&empty, b""), Ok(()));
    }

    #[test]
    fn unsupported_code_is_an_error() {
        // sha3-256 (0x16) is not enabled in the workspace.
        let cid = Cid::new_v1(RAW, Multihash::wrap(0x16, &[0u8; 32]).expect("32 bytes"));
        assert_eq!(
            verify_block(&cid, b""),
            Err(VerifyError::UnsupportedHash { cid, code: 0x16 })
        );
    }

    #[test]
    fn digest_lengths() {
        let full = Code::Sha2_256.digest(b"data");
        let truncated = Cid::new_v1(
            RAW,
            Multihash::wrap(0x12, &full.digest()[..20]).expect("20 bytes"),
        );
        assert_eq!(verify_block(&truncated, b"data"), Ok(()));
        assert!(matches!(
            verify_block(&truncated, b"date"),
            Err(VerifyError::Mismatch { .. })
        ));
        let empty = Cid::new_v1(RAW, Multihash::wrap(0x12, &[]).expect("empty"));
        assert!(matches!(
            verify_block(&empty, b"data"),
            Err(VerifyError::DigestLength {
                len: 0,
                max: 32,
                ..
            })
        ));
        let long = Cid::new_v1(RAW, Multihash::wrap(0x12, &[0u8; 33]).expect("33 bytes"));
        assert!(matches!(
            verify_block(&long, b"data"),
            Err(VerifyError::DigestLength {
                len: 33,
                max: 32,
                ..
            })
        ));
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
