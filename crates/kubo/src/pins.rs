//! Kubo's pins: go-ipfs-pinner's `dspinner` (boxo `pinning/pinner/dspinner/pin.go`). Each pin
//! is a datastore record `/pins/pin/<id>` whose value is a CBOR map written by refmt with
//! the atlas `pinAtl`: `cid` (byte string: the CID's binary form, no tag 42), `mode` (integer:
//! 0 recursive, 1 direct), `name` (text, omitted when empty) and `metadata` (map, omitted when
//! empty; ignored here). The `/pins/index/...` records only index these and are not read.

use std::path::Path;

use cid::Cid;
use ipld_core::ipld::Ipld;

use crate::repo::{KuboError, io_error};

/// Datastore key prefix of pin records.
pub const PIN_KEY_PREFIX: &[u8] = b"/pins/pin/";

/// Largest pin record accepted, bytes (a CID, a name and small metadata fit in far less).
pub const MAX_PIN_RECORD: usize = 64 * 1024;

/// How a pin holds its DAG (boxo `pinner.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// The root and every block under it (mode 0).
    Recursive,
    /// The root block alone (mode 1).
    Direct,
}

/// One pin record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuboPin {
    /// The pin's id (the last segment of its datastore key).
    pub id: String,
    /// The pinned CID.
    pub cid: Cid,
    /// Recursive or direct.
    pub mode: PinMode,
    /// The pin's name (empty when none).
    pub name: String,
}

/// Why a pin record was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pin record {id:?}: {reason}")]
pub struct PinDecodeError {
    /// The pin's id.
    pub id: String,
    /// What is wrong.
    pub reason: String,
}

/// Decodes the value of `/pins/pin/<id>` (see the module docs).
///
/// # Errors
/// [`PinDecodeError`] when the bytes are not a CBOR map with a CID byte string and mode 0 or
/// 1, the name is not text, or the record is larger than [`MAX_PIN_RECORD`].
pub fn decode_pin(id: &str, value: &[u8]) -> Result<KuboPin, PinDecodeError> {
    let fail = |reason: String| PinDecodeError {
        id: id.to_owned(),
        reason,
    };
    if value.len() > MAX_PIN_RECORD {
        return Err(fail(format!("{} bytes is too large", value.len())));
    }
    let ipld: Ipld =
        serde_ipld_dagcbor::from_slice(value).map_err(|e| fail(format!("not CBOR: {e}")))?;
    let Ipld::Map(map) = ipld else {
        return Err(fail("not a CBOR map".into()));
    };
    let cid = match map.get("cid") {
        Some(Ipld::Bytes(bytes)) => {
            Cid::try_from(bytes.as_slice()).map_err(|e| fail(format!("cid: {e}")))?
        }
        _ => return Err(fail("no cid byte string".into())),
    };
    let mode = match map.get("mode") {
        Some(Ipld::Integer(0)) | None => PinMode::Recursive,
        Some(Ipld::Integer(1)) => PinMode::Direct,
        Some(other) => return Err(fail(format!("mode {other:?} is neither 0 nor 1"))),
    };
    let name = match map.get("name") {
        Some(Ipld::String(name)) => name.clone(),
        None => String::new(),
        Some(_) => return Err(fail("name is not text".into())),
    };
    Ok(KuboPin {
        id: id.to_owned(),
        cid,
        mode,
        name,
    })
}

/// A pin record as dspinner writes it (refmt, keys in the atlas's order: `cid`, `mode`, then
/// `name` when not empty); for tests and the fuzz target.
pub fn encode_pin(cid: &Cid, mode: u8, name: Option<&str>) -> Vec<u8> {
    fn head(major: u8, len: usize, out: &mut Vec<u8>) {
        let major = major << 5;
        match len {
            0..=23 => out.push(major | len as u8),
            24..=0xff => out.extend([major | 24, len as u8]),
            _ => {
                out.push(major | 25);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
    }
    let name = name.filter(|n| !n.is_empty());
    let mut out = vec![0xa2 + u8::from(name.is_some())];
    out.extend_from_slice(b"\x63cid");
    let bytes = cid.to_bytes();
    head(2, bytes.len(), &mut out);
    out.extend_from_slice(&bytes);
    out.extend_from_slice(b"\x64mode");
    head(0, usize::from(mode), &mut out);
    if let Some(name) = name {
        out.extend_from_slice(b"\x64name");
        head(3, name.len().min(0xffff), &mut out);
        out.extend_from_slice(&name.as_bytes()[..name.len().min(0xffff)]);
    }
    out
}

/// Reads every `/pins/pin/` record of the LevelDB datastore `datastore`, from a copy made in
/// `scratch` (goleveldb's files, snappy blocks included; opening replays the log and writes a
/// new manifest, which must not happen to Kubo's own files).
///
/// # Errors
/// [`KuboError::Io`] copying; [`KuboError::LevelDb`] when the copy does not open.
pub fn read_pins(
    datastore: &Path,
    scratch: &Path,
) -> Result<Vec<Result<KuboPin, PinDecodeError>>, KuboError> {
    let copy = tempfile::tempdir_in(scratch).map_err(io_error(scratch))?;
    for entry in std::fs::read_dir(datastore).map_err(io_error(datastore))? {
        let entry = entry.map_err(io_error(datastore))?;
        let name = entry.file_name();
        // goleveldb's LOCK is held by a live process only; the copy gets its own.
        if name == "LOCK" || !entry.file_type().map_err(io_error(datastore))?.is_file() {
            continue;
        }
        let to = copy.path().join(&name);
        std::fs::copy(entry.path(), &to).map_err(io_error(&entry.path()))?;
    }
    let leveldb = |e: rusty_leveldb::Status| KuboError::LevelDb {
        path: datastore.to_owned(),
        detail: e.to_string(),
    };
    let options = rusty_leveldb::Options {
        create_if_missing: false,
        ..Default::default()
    };
    let mut db = rusty_leveldb::DB::open(copy.path(), options).map_err(leveldb)?;
    let mut iter = db.new_iter().map_err(leveldb)?;
    use rusty_leveldb::LdbIterator as _;
    iter.seek(PIN_KEY_PREFIX);
    let mut pins = Vec::new();
    while iter.valid() {
        let Some((key, value)) = iter.current() else {
            break;
        };
        let Some(id) = key.strip_prefix(PIN_KEY_PREFIX) else {
            break;
        };
        let id = String::from_utf8_lossy(id);
        pins.push(decode_pin(&id, &value));
        iter.advance();
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_as_dspinner_writes_them() {
        let cid: Cid = "QmUQo48ZsyKsaSjsx8oifnobqnnoxtCpGbEQZKU6mCAUxg"
            .parse()
            .unwrap();
        let pin = decode_pin("x", &encode_pin(&cid, 0, None)).unwrap();
        assert_eq!(
            (pin.cid, pin.mode, pin.name.as_str()),
            (cid, PinMode::Recursive, "")
        );
        let pin = decode_pin("y", &encode_pin(&cid, 1, Some("docs"))).unwrap();
        assert_eq!((pin.mode, pin.name.as_str()), (PinMode::Direct, "docs"));
        assert!(decode_pin("z", &encode_pin(&cid, 2, None)).is_err());
        assert!(decode_pin("z", b"\xa0").is_err(), "no cid");
        assert!(decode_pin("z", b"\x01").is_err(), "not a map");
    }
}
