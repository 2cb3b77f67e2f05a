//! Unsigned LEB128 varints as used by CAR length prefixes (carv1.md "Length").

/// Longest varint accepted, in bytes: ten 7-bit groups hold a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Outcome of decoding a varint from the front of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Varint {
    /// The slice ends before the varint does.
    Incomplete,
    /// A complete varint: its `value` and its encoded length in bytes.
    Complete { value: u64, len: usize },
    /// More than [`MAX_VARINT_LEN`] bytes, or a value above `u64::MAX`.
    Overflow,
    /// Ends in a zero byte after the first one (a padded, non-canonical encoding).
    NonMinimal,
}

/// Decodes the varint at the front of `buf`. Never reads past [`MAX_VARINT_LEN`] bytes.
pub(crate) fn decode(buf: &[u8]) -> Varint {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(MAX_VARINT_LEN) {
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            // The tenth group may only carry bit 63 and must be the last one.
            return Varint::Overflow;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Varint::NonMinimal;
            }
            return Varint::Complete { value, len: i + 1 };
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        Varint::Overflow
    } else {
        Varint::Incomplete
    }
}

/// Appends the minimal varint encoding of `value` to `out`.
pub(crate) fn encode(value: u64, out: &mut Vec<u8>) {
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.extend_from_slice(unsigned_varint::encode::u64(value, &mut buf));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        assert_eq!(decode(&[0x00]), Varint::Complete { value: 0, len: 1 });
        assert_eq!(decode(&[0x7f]), Varint::Complete { value: 127, len: 1 });
        assert_eq!(
            decode(&[0x80, 0x01]),
            Varint::Complete { value: 128, len: 2 }
        );
        assert_eq!(decode(&[0x80]), Varint::Incomplete);
        assert_eq!(decode(&[]), Varint::Incomplete);
        assert_eq!(decode(&[0x80, 0x00]), Varint::NonMinimal);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            decode(&max),
            Varint::Complete {
                value: u64::MAX,
                len: 10
            }
        );
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(decode(&over), Varint::Overflow);
        assert_eq!(decode(&[0x80; 10]), Varint::Overflow);
        assert_eq!(decode(&[0x80; 9]), Varint::Incomplete);
    }

    proptest! {
        #[test]
        fn round_trip(value: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode(value, &mut out);
            let len = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode(&out), Varint::Complete { value, len });
            for cut in 0..len {
                prop_assert_eq!(decode(&out[..cut]), Varint::Incomplete);
            }
        }

        #[test]
        fn agrees_with_unsigned_varint(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            match decode(&bytes) {
                Varint::Complete { value, len } => {
                    let (v, rest) = unsigned_varint::decode::u64(&bytes).expect("reference decodes");
                    prop_assert_eq!(v, value);
                    prop_assert_eq!(rest.len(), bytes.len() - len);
                }
                Varint::NonMinimal => {
                    prop_assert!(unsigned_varint::decode::u64(&bytes).is_err());
                }
                // Stricter than unsigned-varint, which accepts a tenth byte above 1 and drops
                // the excess bits; `known_encodings` covers this case.
                Varint::Overflow => {}
                Varint::Incomplete => {
                    prop_assert!(matches!(
                        unsigned_varint::decode::u64(&bytes),
                        Err(unsigned_varint::decode::Error::Insufficient)
                    ));
                }
            }
        }
    }
}
