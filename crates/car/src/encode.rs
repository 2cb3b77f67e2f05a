//! CARv1 section encoding (carv1.md "Data").

use cid::{Cid, Version};

use crate::varint;

/// Appends one CARv1 section to `out`: the varint length of CID plus data, the CID's raw bytes,
/// then `data` (carv1.md "Data"). The CID is written as given (a CIDv0 stays CIDv0).
///
/// No limit is applied: callers that want readers to accept the file keep `data` within
/// [`crate::MAX_BLOCK_SIZE`]. Pair with [`crate::encode_v1_header`] for a whole CARv1.
pub fn encode_section(cid: &Cid, data: &[u8], out: &mut Vec<u8>) {
    let len = cid.encoded_len() + data.len();
    out.reserve(varint::MAX_VARINT_LEN + len);
    varint::encode(len as u64, out);
    write_cid(cid, out);
    out.extend_from_slice(data);
}

/// Appends the raw binary form of `cid`, identical to `Cid::to_bytes` without allocating.
fn write_cid(cid: &Cid, out: &mut Vec<u8>) {
    if cid.version() == Version::V1 {
        varint::encode(1, out);
        varint::encode(cid.codec(), out);
    }
    let hash = cid.hash();
    varint::encode(hash.code(), out);
    varint::encode(u64::from(hash.size()), out);
    out.extend_from_slice(hash.digest());
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash::Multihash;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cid_bytes_match_the_cid_crate(
            v0 in any::<bool>(),
            codec in any::<u64>(),
            code in any::<u64>(),
            digest in proptest::collection::vec(any::<u8>(), 0..=64),
        ) {
            let cid = if v0 {
                let mut d = [0u8; 32];
                for (a, b) in d.iter_mut().zip(&digest) { *a = *b; }
                Cid::new_v0(Multihash::wrap(0x12, &d).expect("32 bytes")).expect("v0")
            } else {
                Cid::new_v1(codec, Multihash::wrap(code, &digest).expect("<= 64 bytes"))
            };
            let mut out = Vec::new();
            write_cid(&cid, &mut out);
            prop_assert_eq!(out, cid.to_bytes());
        }
    }
}
