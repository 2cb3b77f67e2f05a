//! A bounded, iterative well-formedness check for the DAG-CBOR in `IpnsEntry.data`.
//!
//! `serde_ipld_dagcbor` decodes (and `Ipld` drops) nested structures recursively and has no depth
//! limit, so a signed but hostile `data` of ten thousand nested arrays could exhaust the stack.
//! This walker runs first, without recursion, and refuses anything deeper than
//! [`MAX_DATA_DEPTH`], indefinite lengths (not allowed in DAG-CBOR) and trailing bytes.

/// Deepest nesting of arrays, maps and tags accepted in `IpnsEntry.data` (the top-level map is
/// depth 1). The five spec fields need depth 1; extensions get room to spare.
pub const MAX_DATA_DEPTH: usize = 32;

/// Checks that `data` is exactly one well-formed definite-length CBOR item nested at most
/// `max_depth` deep. Runs in time linear in `data.len()`, with memory bounded by `max_depth`.
///
/// # Errors
/// A text naming the problem (truncation, indefinite length, reserved header, depth, trailing
/// bytes).
pub(crate) fn check_well_formed(data: &[u8], max_depth: usize) -> Result<(), String> {
    let mut pos = 0usize;
    // Items still to read at each open level; the bottom entry is the single top-level item.
    let mut pending: Vec<u64> = vec![1];
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let initial = *data
            .get(pos)
            .ok_or_else(|| format!("truncated CBOR at byte {pos}"))?;
        pos += 1;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let width = 1usize << (info - 24);
                let end = pos
                    .checked_add(width)
                    .filter(|end| *end <= data.len())
                    .ok_or_else(|| format!("truncated CBOR header at byte {pos}"))?;
                let value = data[pos..end]
                    .iter()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
                pos = end;
                value
            }
            31 => return Err(format!("indefinite-length CBOR item at byte {}", pos - 1)),
            _ => {
                return Err(format!(
                    "reserved CBOR header {initial:#04x} at byte {}",
                    pos - 1
                ));
            }
        };
        match major {
            2 | 3 => {
                let len = usize::try_from(arg).map_err(|_| "CBOR string length overflows")?;
                pos = pos
                    .checked_add(len)
                    .filter(|end| *end <= data.len())
                    .ok_or_else(|| format!("truncated CBOR string at byte {pos}"))?;
            }
            4..=6 => {
                let items = match major {
                    4 => arg,
                    5 => arg.checked_mul(2).ok_or("CBOR map length overflows")?,
                    _ => 1,
                };
                if items > 0 {
                    if pending.len() > max_depth {
                        return Err(format!("CBOR nested deeper than {max_depth} levels"));
                    }
                    pending.push(items);
                }
            }
            // 0, 1: integers; 7: simple values and floats, whose bytes the header consumed.
            _ => {}
        }
    }
    if pos != data.len() {
        return Err(format!(
            "{} trailing bytes after the CBOR item",
            data.len() - pos
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_flat_map_and_rejects_garbage() {
        // {"a": 1}
        assert!(check_well_formed(&[0xa1, 0x61, b'a', 0x01], 1).is_ok());
        assert!(check_well_formed(&[0xa1, 0x61, b'a'], 1).is_err());
        assert!(check_well_formed(&[0xa1, 0x61, b'a', 0x01, 0x00], 1).is_err());
        assert!(check_well_formed(&[0x9f, 0xff], 4).is_err());
        assert!(check_well_formed(&[0x1c], 4).is_err());
        assert!(check_well_formed(&[], 4).is_err());
    }

    #[test]
    fn depth_limit_is_exact() {
        // [[[0]]] is depth 3.
        let three = [0x81, 0x81, 0x81, 0x00];
        assert!(check_well_formed(&three, 3).is_ok());
        assert!(check_well_formed(&three, 2).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut deep = vec![0x81; 100_000];
        deep.push(0x00);
        let err = check_well_formed(&deep, MAX_DATA_DEPTH).unwrap_err();
        assert!(err.contains("deeper"), "{err}");
    }

    #[test]
    fn huge_declared_lengths_fail_cleanly() {
        // A byte string claiming u64::MAX bytes, an array claiming u64::MAX items.
        let mut string = vec![0x5b];
        string.extend_from_slice(&[0xff; 8]);
        assert!(check_well_formed(&string, 4).is_err());
        let mut array = vec![0x9b];
        array.extend_from_slice(&[0xff; 8]);
        assert!(check_well_formed(&array, 4).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = check_well_formed(&bytes, MAX_DATA_DEPTH);
        }

        #[test]
        fn accepts_every_dag_cbor_encoding_within_the_depth(
            entries in proptest::collection::btree_map(".{0,8}", proptest::collection::vec(proptest::prelude::any::<i64>(), 0..4), 0..6),
            blob in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            use ipld_core::ipld::Ipld;
            let mut map: std::collections::BTreeMap<String, Ipld> = entries
                .into_iter()
                .map(|(k, v)| (k, Ipld::List(v.into_iter().map(|i| Ipld::Integer(i.into())).collect())))
                .collect();
            map.insert("blob".into(), Ipld::Bytes(blob));
            let encoded = serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).unwrap();
            proptest::prop_assert_eq!(check_well_formed(&encoded, 2), Ok(()));
            proptest::prop_assert!(check_well_formed(&encoded[..encoded.len() - 1], 2).is_err());
        }
    }
}
