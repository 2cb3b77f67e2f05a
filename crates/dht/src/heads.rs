//! Deterministic head identities spread evenly over the keyspace (like libp2p's
//! hydra-booster), so that some head is among the k closest peers of almost every key.
//!
//! Head `index` of a fleet of `fleet_size` heads gets the Kademlia key prefix
//! `p = floor(index × 2^bits / fleet_size)` over the top `bits = ceil(log2(fleet_size))` bits
//! of its [`Key`](crate::kbucket::Key). The prefixes are distinct, and when `fleet_size` is a
//! power of two the prefix ranges are exactly the `fleet_size` equal ranges of the keyspace;
//! otherwise range `p` holds the start of the `index`-th equal range. The ed25519 secret of
//! head `index` is the first `sha256(seed || b"hydrant-head" || index_be32 || counter_be64)`,
//! counter = 0, 1, …, whose peer ID's key has the prefix. The result depends only on
//! `(seed, index, fleet_size)`: machines can run disjoint index ranges of one fleet without
//! talking to each other, and a restart gives the same peer IDs.
//!
//! Cost: about 2^bits tries per head (each an SHA2-256, an ed25519 public key derivation and
//! an SHA2-256 of the peer ID: some tens of microseconds), so about 4096 tries, some 0.1 s,
//! per head at the cap [`MAX_FLEET_SIZE`], and minutes for a whole fleet of that size.
//! A hard cap on tries ([`MAX_TRIES_PER_HEAD`]) turns a (practically impossible) miss into an
//! error rather than a hang.

use libp2p::identity::Keypair;
use sha2::{Digest as _, Sha256};

use crate::kbucket::Key;

/// Largest fleet; 2^12 ranges.
pub const MAX_FLEET_SIZE: u32 = 4096;

/// Most secrets tried for one head (2^bits × 64: the chance of running out is about
/// e^-64).
pub const MAX_TRIES_PER_HEAD: u64 = (MAX_FLEET_SIZE as u64) * 64;

/// Errors of [`head_keypair`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// `fleet_size` is 0 or over [`MAX_FLEET_SIZE`].
    #[error("fleet size {0} is not within 1..={MAX_FLEET_SIZE}")]
    FleetSize(u32),
    /// `index` is not below `fleet_size`.
    #[error("head index {index} is not below the fleet size {fleet_size}")]
    Index {
        /// The index.
        index: u32,
        /// The fleet size.
        fleet_size: u32,
    },
    /// No secret with the wanted prefix within [`MAX_TRIES_PER_HEAD`] tries.
    #[error("no key found for head {0} within the try limit")]
    Exhausted(u32),
}

/// Number of prefix bits used for a fleet: ceil(log2(fleet_size)).
pub fn prefix_bits(fleet_size: u32) -> u32 {
    if fleet_size <= 1 {
        0
    } else {
        32 - (fleet_size - 1).leading_zeros()
    }
}

/// The key prefix (top [`prefix_bits`] bits) of head `index`.
pub fn head_prefix(index: u32, fleet_size: u32) -> u64 {
    let bits = prefix_bits(fleet_size);
    (u64::from(index) << bits) / u64::from(fleet_size.max(1))
}

/// The top `bits` bits of a key.
pub fn key_prefix(key: &Key, bits: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        key.top_u64() >> (64 - bits)
    }
}

/// The ed25519 keypair of head `index` of the fleet `(seed, fleet_size)` (see the module
/// doc).
///
/// # Errors
/// [`HeadError::FleetSize`], [`HeadError::Index`], [`HeadError::Exhausted`].
pub fn head_keypair(seed: &[u8; 32], index: u32, fleet_size: u32) -> Result<Keypair, HeadError> {
    if fleet_size == 0 || fleet_size > MAX_FLEET_SIZE {
        return Err(HeadError::FleetSize(fleet_size));
    }
    if index >= fleet_size {
        return Err(HeadError::Index { index, fleet_size });
    }
    let bits = prefix_bits(fleet_size);
    let want = head_prefix(index, fleet_size);
    for counter in 0..MAX_TRIES_PER_HEAD {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(b"hydrant-head");
        h.update(index.to_be_bytes());
        h.update(counter.to_be_bytes());
        let secret: [u8; 32] = h.finalize().into();
        let Ok(keypair) = Keypair::ed25519_from_bytes(secret) else {
            continue;
        };
        let key = Key::from_peer(&keypair.public().to_peer_id());
        if key_prefix(&key, bits) == want {
            return Ok(keypair);
        }
    }
    Err(HeadError::Exhausted(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic() {
        let seed = [3u8; 32];
        let a = head_keypair(&seed, 5, 16).unwrap().public().to_peer_id();
        let b = head_keypair(&seed, 5, 16).unwrap().public().to_peer_id();
        assert_eq!(a, b);
        let other = head_keypair(&[4u8; 32], 5, 16)
            .unwrap()
            .public()
            .to_peer_id();
        assert_ne!(a, other, "the seed matters");
    }

    #[test]
    fn balanced_and_distinct() {
        for fleet in [1u32, 2, 5, 16, 33] {
            let bits = prefix_bits(fleet);
            let mut ids = HashSet::new();
            let mut prefixes = HashSet::new();
            for i in 0..fleet {
                let peer = head_keypair(&[9u8; 32], i, fleet)
                    .unwrap()
                    .public()
                    .to_peer_id();
                let key = Key::from_peer(&peer);
                let p = key_prefix(&key, bits);
                assert_eq!(
                    p,
                    head_prefix(i, fleet),
                    "head {i} of {fleet} in its own range"
                );
                // The range holds the start of the i-th equal range of the keyspace.
                let start = (u128::from(i) << 64) / u128::from(fleet);
                let lo = u128::from(p) << (64 - bits);
                let hi = if bits == 0 {
                    1u128 << 64
                } else {
                    u128::from(p + 1) << (64 - bits)
                };
                assert!(lo <= start && start < hi);
                ids.insert(peer);
                prefixes.insert(p);
            }
            assert_eq!(ids.len(), fleet as usize);
            assert_eq!(prefixes.len(), fleet as usize);
        }
    }

    #[test]
    fn index_ranges_of_one_fleet_agree() {
        // A machine running heads 4..8 computes the same IDs as one running all 8.
        let seed = [1u8; 32];
        for i in 4..8 {
            let alone = head_keypair(&seed, i, 8).unwrap().public().to_peer_id();
            let all: Vec<_> = (0..8)
                .map(|j| head_keypair(&seed, j, 8).unwrap().public().to_peer_id())
                .collect();
            assert_eq!(alone, all[i as usize]);
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(
            head_keypair(&[0; 32], 0, 0).unwrap_err(),
            HeadError::FleetSize(0)
        );
        assert_eq!(
            head_keypair(&[0; 32], 0, 4097).unwrap_err(),
            HeadError::FleetSize(4097)
        );
        assert_eq!(
            head_keypair(&[0; 32], 4, 4).unwrap_err(),
            HeadError::Index {
                index: 4,
                fleet_size: 4
            }
        );
        assert_eq!(prefix_bits(4096), 12);
        assert_eq!(prefix_bits(4097 - 1), 12);
        assert_eq!(prefix_bits(5), 3);
    }
}
