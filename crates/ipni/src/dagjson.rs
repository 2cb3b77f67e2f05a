//! The small slice of DAG-JSON that IPNI nodes use, written exactly as go-ipld-prime's
//! `dagjson.Encode` writes it (map keys in lexical byte order, no whitespace, links as
//! `{"/":"<cid>"}` with CIDv1 in base32 and CIDv0 in base58btc, bytes as
//! `{"/":{"bytes":"<base64, standard alphabet, no padding>"}}`, strings escaped as refmt's JSON
//! encoder escapes them), and read leniently where go-ipld-prime is lenient (padded base64).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};
use serde::Deserialize;

use crate::DecodeError;

/// Multicodec of DAG-JSON, the codec of every IPNI advertisement and entry chunk CID.
pub const DAG_JSON: u64 = 0x0129;

/// Base64 as go writes it (`RawStdEncoding`): standard alphabet, no padding.
const WRITE: GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// Base64 as go-ipld-prime reads it: `RawStdEncoding`, falling back to padded `StdEncoding`;
/// go's decoders are not strict about the unused bits of the last character.
const READ: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The CIDv1 (DAG-JSON, sha2-256) of a DAG-JSON block's bytes, as go-libipni's `Linkproto`
/// makes it.
pub fn dag_json_cid(block: &[u8]) -> Cid {
    Cid::new_v1(DAG_JSON, Code::Sha2_256.digest(block))
}

/// Appends DAG-JSON to a buffer. Callers emit map keys in lexical order themselves.
pub(crate) struct Writer {
    pub(crate) out: String,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self { out: String::new() }
    }

    pub(crate) fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// `"key":` preceded by a comma unless `first`.
    pub(crate) fn key(&mut self, key: &str, first: bool) {
        if !first {
            self.out.push(',');
        }
        self.string(key);
        self.out.push(':');
    }

    /// A JSON string, escaped as refmt's `emitString` does: `\\`, `\"`, `\n`, `\r`, `\t`, other
    /// bytes below 0x20 as `\u00xx`, U+2028 and U+2029 as `\u2028`/`\u2029`; the rest verbatim.
    pub(crate) fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '"' => self.out.push_str("\\\""),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{2028}' => self.out.push_str("\\u2028"),
                '\u{2029}' => self.out.push_str("\\u2029"),
                c if (c as u32) < 0x20 => {
                    self.out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.out.push_str(r#"{"/":{"bytes":""#);
        WRITE.encode_string(b, &mut self.out);
        self.out.push_str(r#""}}"#);
    }

    pub(crate) fn link(&mut self, cid: &Cid) {
        self.out.push_str(r#"{"/":"#);
        // CIDv0 prints as base58btc, CIDv1 as base32 lower: go-cid's `String()`.
        self.string(&cid.to_string());
        self.out.push('}');
    }

    pub(crate) fn bool(&mut self, b: bool) {
        self.out.push_str(if b { "true" } else { "false" });
    }

    pub(crate) fn strings(&mut self, list: &[String]) {
        self.out.push('[');
        for (i, s) in list.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.string(s);
        }
        self.out.push(']');
    }
}

/// `{"/": "<cid>"}` as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkDe {
    #[serde(rename = "/")]
    cid: String,
}

impl LinkDe {
    pub(crate) fn parse(&self, field: &'static str) -> Result<Cid, DecodeError> {
        Cid::try_from(self.cid.as_str()).map_err(|source| DecodeError::Cid { field, source })
    }
}

/// `{"/": {"bytes": "<base64>"}}` as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BytesDe {
    #[serde(rename = "/")]
    inner: BytesInner,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BytesInner {
    bytes: String,
}

impl BytesDe {
    pub(crate) fn parse(&self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        READ.decode(self.inner.bytes.as_bytes())
            .map_err(|_| DecodeError::Base64 { field })
    }
}

/// For `optional` schema fields: absent is `None`, but an explicit `null` is refused (the
/// schema's fields are optional, not nullable).
pub(crate) fn some<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Parses `input` as `T`, refusing inputs over `max` bytes.
pub(crate) fn from_slice<'a, T: Deserialize<'a>>(
    what: &'static str,
    input: &'a [u8],
    max: usize,
) -> Result<T, DecodeError> {
    if input.len() > max {
        return Err(DecodeError::TooLarge {
            what,
            size: input.len(),
            max,
        });
    }
    serde_json::from_slice(input).map_err(|source| DecodeError::Json { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_refmt() {
        let mut w = Writer::new();
        w.string("a\"\\\n\r\t\u{1}\u{8}\u{c}<>&\u{2028}é");
        assert_eq!(w.out, r#""a\"\\\n\r\t\u0001\u0008\u000c<>&\u2028é""#);
    }

    #[test]
    fn base64_reads_padded_and_unpadded() {
        let padded = BytesDe {
            inner: BytesInner {
                bytes: "YQ==".into(),
            },
        };
        let raw = BytesDe {
            inner: BytesInner { bytes: "YQ".into() },
        };
        assert_eq!(padded.parse("x").unwrap(), b"a");
        assert_eq!(raw.parse("x").unwrap(), b"a");
    }
}
