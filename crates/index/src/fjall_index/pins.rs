//! [`PinStore`] on the embedded index: the `pins` keyspace, key = the CID's binary form, value
//! = `created_at` (u64 big-endian) ++ name (UTF-8). Every write is one fsynced batch.

use std::ops::Bound;

use async_trait::async_trait;
use cid::Cid;
use fjall::PersistMode;

use super::{FjallIndex, Inner, storage};
use crate::{IndexError, MAX_LIST_PINS, Pin, PinStore};

#[async_trait]
impl PinStore for FjallIndex {
    async fn add_pin(&self, pin: &Pin) -> Result<bool, IndexError> {
        let pin = pin.clone();
        self.blocking("add_pin", move |inner| {
            // One writer at a time: the read of `created_at` and the write go together.
            let _writer = inner
                .pin_writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = pin.cid.to_bytes();
            let old = inner.read_pin(&key)?;
            let stored = Pin {
                created_at: old.as_ref().map_or(pin.created_at, |o| o.created_at),
                ..pin
            };
            let mut batch = inner.db.batch().durability(Some(PersistMode::SyncAll));
            batch.insert(&inner.pins, key, encode_pin_value(&stored));
            batch
                .commit()
                .map_err(|e| storage(&format!("writing pin {}", stored.cid), e))?;
            Ok(old.is_none())
        })
        .await
    }

    async fn remove_pin(&self, cid: &Cid) -> Result<bool, IndexError> {
        let cid = *cid;
        self.blocking("remove_pin", move |inner| {
            let _writer = inner
                .pin_writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = cid.to_bytes();
            if inner.read_pin(&key)?.is_none() {
                return Ok(false);
            }
            let mut batch = inner.db.batch().durability(Some(PersistMode::SyncAll));
            batch.remove(&inner.pins, key);
            batch
                .commit()
                .map_err(|e| storage(&format!("removing pin {cid}"), e))?;
            Ok(true)
        })
        .await
    }

    async fn pin(&self, cid: &Cid) -> Result<Option<Pin>, IndexError> {
        let key = cid.to_bytes();
        self.blocking("pin", move |inner| inner.read_pin(&key))
            .await
    }

    async fn list_pins(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, IndexError> {
        let after = after.map(Cid::to_bytes);
        let limit = limit.min(MAX_LIST_PINS);
        self.blocking("list_pins", move |inner| {
            let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut out = Vec::new();
            for guard in inner.pins.range::<&[u8], _>((start, Bound::Unbounded)) {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = guard
                    .into_inner()
                    .map_err(|e| storage("scanning pins", e))?;
                out.push(decode_pin(&key, &value)?);
            }
            Ok(out)
        })
        .await
    }
}

impl Inner {
    fn read_pin(&self, key: &[u8]) -> Result<Option<Pin>, IndexError> {
        self.pins
            .get(key)
            .map_err(|e| storage("reading a pin", e))?
            .map(|value| decode_pin(key, &value))
            .transpose()
    }
}

/// A pin's stored value in the embedded index: `created_at` (u64 big-endian) ++ name (UTF-8).
fn encode_pin_value(pin: &Pin) -> Vec<u8> {
    let mut value = pin.created_at.to_be_bytes().to_vec();
    value.extend_from_slice(pin.name.as_bytes());
    value
}

/// Decodes a stored pin: `key` is the CID's binary form, `value` as [`encode_pin_value`].
///
/// # Errors
/// [`IndexError::Corrupt`] naming the pin when either part does not decode.
fn decode_pin(key: &[u8], value: &[u8]) -> Result<Pin, IndexError> {
    let corrupt = |detail: String| IndexError::Corrupt {
        what: format!("pin {}", hex(key)),
        detail,
    };
    let cid = Cid::try_from(key).map_err(|e| corrupt(format!("CID: {e}")))?;
    let (at, name) = value
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(format!("value of {} bytes, want at least 8", value.len())))?;
    let name = std::str::from_utf8(name).map_err(|e| corrupt(format!("name: {e}")))?;
    Ok(Pin {
        cid,
        name: name.to_owned(),
        created_at: u64::from_be_bytes(*at),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_roundtrip_and_damage_is_named() {
        let cid: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap();
        let pin = Pin {
            cid,
            name: "café".into(),
            created_at: 1_700_000_000,
        };
        let key = cid.to_bytes();
        assert_eq!(decode_pin(&key, &encode_pin_value(&pin)).unwrap(), pin);
        for (key, value) in [
            (key.clone(), vec![0u8; 7]),
            (key.clone(), [&[0u8; 8][..], &[0xff]].concat()),
            (vec![0x01], encode_pin_value(&pin)),
        ] {
            let err = decode_pin(&key, &value).unwrap_err();
            assert!(
                matches!(err, IndexError::Corrupt { ref what, .. } if what.starts_with("pin ")),
                "{err}"
            );
        }
    }
}
