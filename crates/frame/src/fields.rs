//! Counting a protobuf body's fields before decoding it ([`count_fields`]).
//!
//! prost decodes a repeated field by pushing one struct per occurrence, so a body of many empty
//! entries (2 bytes each on the wire) decodes to far more memory than its length: a 4 MiB
//! Bitswap message of empty wantlist entries is about two million structs. Counting the
//! occurrences first, which allocates nothing, lets a decoder refuse such a body, or charge
//! its memory budget for what decoding will allocate, before prost allocates anything.

use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

/// Deepest field path [`count_fields`] follows.
pub const MAX_PATH_DEPTH: usize = 4;

/// Counts, for each field path of `paths`, the fields of `body` (a protobuf message) at that
/// path: `[1, 1]` is field 1 of the messages in field 1, `[4]` a top-level field 4. Only
/// length-delimited fields on the way to a longer path are descended into; every other field
/// is skipped without allocating.
///
/// Counting stops at the first malformed field (a truncated length, a bad key, a group that
/// does not end): the counts are then those of the fields up to it, which is also where a
/// decoder of the same body stops with an error, so they still bound what it allocates.
/// Outside input; the fuzz targets of the Bitswap and DHT decoders cover it.
///
/// # Panics
/// When a path is empty or longer than [`MAX_PATH_DEPTH`].
pub fn count_fields<const N: usize>(body: &[u8], paths: [&[u32]; N]) -> [usize; N] {
    assert!(
        paths
            .iter()
            .all(|p| !p.is_empty() && p.len() <= MAX_PATH_DEPTH),
        "field paths have 1 to {MAX_PATH_DEPTH} numbers"
    );
    let mut counts = [0; N];
    let _ = walk(
        body,
        &mut Vec::with_capacity(MAX_PATH_DEPTH),
        &paths,
        &mut counts,
    );
    counts
}

/// Where counting stopped early.
struct Malformed;

impl From<prost::DecodeError> for Malformed {
    fn from(_: prost::DecodeError) -> Self {
        Malformed
    }
}

fn walk<const N: usize>(
    mut buf: &[u8],
    path: &mut Vec<u32>,
    paths: &[&[u32]; N],
    counts: &mut [usize; N],
) -> Result<(), Malformed> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        path.push(tag);
        for (count, wanted) in counts.iter_mut().zip(paths) {
            if *wanted == path.as_slice() {
                *count += 1;
            }
        }
        let descend = wire_type == WireType::LengthDelimited
            && paths
                .iter()
                .any(|p| p.len() > path.len() && p.starts_with(path));
        let walked = if descend {
            match usize::try_from(decode_varint(&mut buf)?) {
                Ok(len) if len <= buf.len() => {
                    let (inner, rest) = buf.split_at(len);
                    buf = rest;
                    walk(inner, path, paths, counts)
                }
                _ => Err(Malformed),
            }
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).map_err(Malformed::from)
        };
        path.pop();
        walked?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key byte for small field numbers.
    fn key(field: u32, wire_type: u8) -> u8 {
        (field << 3) as u8 | wire_type
    }

    #[test]
    fn counts_nested_and_top_level_fields() {
        // field 1 { field 1 "", field 1 "ab", field 2 = 5 }, field 1 { field 1 "" },
        // field 4 "", field 4 "x", field 3 = 7 (varint).
        let inner_a = [key(1, 2), 0, key(1, 2), 2, b'a', b'b', key(2, 0), 5];
        let inner_b = [key(1, 2), 0];
        let mut body = vec![key(1, 2), inner_a.len() as u8];
        body.extend(inner_a);
        body.extend([key(1, 2), inner_b.len() as u8]);
        body.extend(inner_b);
        body.extend([key(4, 2), 0, key(4, 2), 1, b'x', key(3, 0), 7]);
        assert_eq!(
            count_fields(&body, [&[1, 1], &[1], &[4], &[3], &[2]]),
            [3, 2, 2, 1, 0]
        );
    }

    #[test]
    fn stops_at_the_first_malformed_field() {
        // Two empty field-4 entries, then a length running past the end.
        let body = [key(4, 2), 0, key(4, 2), 0, key(4, 2), 9, 1];
        assert_eq!(count_fields(&body, [&[4]]), [3]);
        // A nested length running past its parent.
        let body = [key(1, 2), 2, key(1, 2), 5];
        assert_eq!(count_fields(&body, [&[1, 1]]), [1]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = count_fields(&body, [&[1, 1], &[2], &[8, 2]]);
        }
    }
}
