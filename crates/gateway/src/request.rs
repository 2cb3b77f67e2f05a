//! Parsing of the outside input of a request: the content path, the query string and the
//! `Accept` header, and the response format they negotiate.
//!
//! Spec: trustless-gateway.md § "HTTP Request" (`Accept`, `format`, `dag-scope`,
//! `entity-bytes`, `car-version`, `car-order`, `car-dups`), § "CAR format signaling in
//! Request"; path-gateway.md § "`filename`".

use cid::Cid;
use hydrant_unixfs::{DagScope, EntityBytes};

/// Media type of a raw block.
pub const MEDIA_RAW: &str = "application/vnd.ipld.raw";
/// Media type of a CAR.
pub const MEDIA_CAR: &str = "application/vnd.ipld.car";
/// Media type of a tar of a UnixFS tree (path-gateway.md § "`Accept` (request header)").
pub const MEDIA_TAR: &str = "application/x-tar";
/// Media type of a DAG-JSON block.
pub const MEDIA_DAG_JSON: &str = "application/vnd.ipld.dag-json";
/// Media type of a DAG-CBOR block.
pub const MEDIA_DAG_CBOR: &str = "application/vnd.ipld.dag-cbor";
/// Media type of a JSON block (codec `json`, 0x0200) or a JSON UnixFS file.
pub const MEDIA_JSON: &str = "application/json";
/// Media type of a CBOR block (codec `cbor`, 0x51).
pub const MEDIA_CBOR: &str = "application/cbor";

/// Why a request was refused before any block was read. Mapped to 400 or 406 in `error.rs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The first path segment is not a CID.
    #[error("invalid CID")]
    InvalidCid,
    /// A path segment is not valid (bad percent-encoding, not UTF-8, `.`/`..`, too many).
    #[error("invalid content path: {0}")]
    InvalidPath(&'static str),
    /// `Accept` names CAR variants this gateway does not produce (`version=2`, an unknown
    /// `order`, …) and nothing else it can answer, not even a wildcard (406 Not Acceptable).
    #[error("requested response format is not supported")]
    NotAcceptable,
    /// A query parameter has an invalid value; names the parameter.
    #[error("invalid value for query parameter {0}")]
    InvalidParam(&'static str),
    /// A raw block was asked for with a content path (trustless-gateway.md: only
    /// `/ipfs/{cid}` is supported for block requests).
    #[error("raw block requests do not support content paths")]
    RawWithPath,
}

/// A parsed `/ipfs/{cid}[/{path}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPath {
    /// The root CID.
    pub cid: Cid,
    /// Percent-decoded path segments after the CID (empty segments, e.g. from a trailing
    /// slash, are dropped).
    pub segments: Vec<String>,
}

/// Parses the part of the URL path after `/ipfs/` (still percent-encoded).
///
/// # Errors
/// [`RequestError::InvalidCid`] when the first segment is not a CID;
/// [`RequestError::InvalidPath`] for bad percent-encoding, non-UTF-8, `.` or `..` segments,
/// or more than `max_segments` segments.
pub fn parse_content_path(rest: &str, max_segments: usize) -> Result<ContentPath, RequestError> {
    let mut parts = rest.split('/');
    let cid_str = parts.next().unwrap_or_default();
    let cid = Cid::try_from(cid_str).map_err(|_| RequestError::InvalidCid)?;
    let mut segments = Vec::new();
    for part in parts {
        if part.is_empty() {
            continue;
        }
        if segments.len() == max_segments {
            return Err(RequestError::InvalidPath("too many segments"));
        }
        let decoded =
            percent_decode(part, false).ok_or(RequestError::InvalidPath("bad percent-encoding"))?;
        if decoded == "." || decoded == ".." {
            return Err(RequestError::InvalidPath("relative segment"));
        }
        segments.push(decoded);
    }
    Ok(ContentPath { cid, segments })
}

/// CAR variant to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarParams {
    /// `dags-scope` (already [`DagScope::Entity`] when `entity_bytes` is set).
    pub scope: DagScope,
    /// `entity-bytes`.
    pub entity_bytes: Option<EntityBytes>,
    /// `dups=y` (true) or `dups=n` (false, the default).
    pub dups: bool,
}

/// The response format a request negotiated.
///
/// Spec: path-gateway.md § "`format` (request query parameter)", § "`Accept` (request
/// header)", § "Response Payload".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/vnd.ipld.raw` (trustless).
    Raw,
    /// `application/vnd.ipld.car; version=1; order=dfs` with these parameters (trustless).
    Car(CarParams),
    /// No explicit format: the deserialized response the terminus's codec implies (file bytes,
    /// directory index, the block of a dag-json/dag-cbor/json/cbor CID). `html`: `Accept`
    /// asked for `text/html` (a dag-json/dag-cbor block is then answered as an HTML page).
    Deserialized {
        /// `text/html` was the preferred acceptable type.
        html: bool,
    },
    /// `?format=tar` / `application/x-tar`: a tar of the UnixFS file or directory.
    Tar,
    /// `?format=dag-json` / `application/vnd.ipld.dag-json`: a dag-json block as is.
    DagJson,
    /// `?format=dag-cbor` / `application/vnd.ipld.dag-cbor`: a dag-cbor block as is.
    DagCbor,
    /// `?format=json` / `application/json`: a json or dag-json block, or a UnixFS file, as
    /// `application/json`.
    Json,
    /// `?format=cbor` / `application/cbor`: a cbor or dag-cbor block as `application/cbor`.
    Cbor,
}

impl Format {
    /// The `format=` value naming this format (`None` for [`Format::Deserialized`]).
    pub fn query_name(&self) -> Option<&'static str> {
        Some(match self {
            Format::Raw => "raw",
            Format::Car(_) => "car",
            Format::Tar => "tar",
            Format::DagJson => "dag-json",
            Format::DagCbor => "dag-cbor",
            Format::Json => "json",
            Format::Cbor => "cbor",
            Format::Deserialized { .. } => return None,
        })
    }
}

/// Everything the query string and `Accept` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The format to respond with.
    pub format: Format,
    /// True when `format` was absent from the query (so the response carries a
    /// `Content-Location` with it, path-gateway.md § "`Content-Location`").
    pub from_accept: bool,
    /// `filename` query parameter, decoded.
    pub filename: Option<String>,
    /// `download=true` (path-gateway.md § "`download` (request query parameter)"): the
    /// response is an `attachment`.
    pub download: bool,
}

/// Decides the response format from the raw query string (without `?`) and the `Accept`
/// header value.
///
/// `format` wins over `Accept`; with `format=car`, CAR parameters (`dups`, `order`,
/// `version`) are still taken from the first acceptable CAR entry of `Accept`, and the
/// `car-*` query parameters override both. `order=unk` is accepted and answered with `dfs`.
/// The default is `dups=n`. Without `format` and without an `Accept` entry naming a format
/// this gateway produces, the answer is [`Format::Deserialized`] (path-gateway.md § "Response
/// Payload": "implicit deserialized response type"); `html` is set when `text/html` is the
/// first acceptable entry.
///
/// # Errors
/// [`RequestError::NotAcceptable`] when `Accept` lists only CAR variants this gateway cannot
/// produce (and no wildcard); [`RequestError::InvalidParam`] for a bad `format` (including
/// `ipns-record`, which has no meaning under `/ipfs/`), `dag-scope`, `entity-bytes`,
/// `car-version`, `car-order` or `car-dups`.
pub fn negotiate(query: Option<&str>, accept: Option<&str>) -> Result<Negotiated, RequestError> {
    let q = Query::parse(query.unwrap_or_default());
    let accepted = parse_accept(accept.unwrap_or_default());
    let first_car = accepted.iter().find_map(|a| match a {
        Accepted::Car { dups } => Some(*dups),
        _ => None,
    });
    let mut kind = match q.get("format") {
        Some("raw") => Some(Kind::Raw),
        Some("car") => Some(Kind::Car(first_car.flatten())),
        Some("tar") => Some(Kind::Other(Format::Tar)),
        Some("dag-json") => Some(Kind::Other(Format::DagJson)),
        Some("dag-cbor") => Some(Kind::Other(Format::DagCbor)),
        Some("json") => Some(Kind::Other(Format::Json)),
        Some("cbor") => Some(Kind::Other(Format::Cbor)),
        Some("ipns-record") => return Err(RequestError::InvalidParam("format")),
        Some(_) => return Err(RequestError::InvalidParam("format")),
        None => None,
    };
    let from_accept = kind.is_none();
    if kind.is_none() {
        kind = accepted.iter().find_map(|a| match a {
            Accepted::Raw => Some(Kind::Raw),
            Accepted::Car { dups } => Some(Kind::Car(*dups)),
            Accepted::Known(f) => Some(Kind::Other(*f)),
            Accepted::Other { .. } | Accepted::BadCar => None,
        });
    }
    let Some(kind) = kind else {
        let bad_car = accepted.iter().any(|a| matches!(a, Accepted::BadCar));
        let wildcard = accepted
            .iter()
            .any(|a| matches!(a, Accepted::Other { wildcard: true }));
        if bad_car && !wildcard {
            return Err(RequestError::NotAcceptable);
        }
        return Ok(Negotiated {
            format: Format::Deserialized { html: false },
            from_accept: false,
            filename: q.get("filename").map(str::to_string),
            download: q.get("download") == Some("true"),
        });
    };
    let format = match kind {
        Kind::Raw => Format::Raw,
        // `text/html` is not a `format`: no Content-Location for it.
        Kind::Other(f @ Format::Deserialized { .. }) => {
            return Ok(Negotiated {
                format: f,
                from_accept: false,
                filename: q.get("filename").map(str::to_string),
                download: q.get("download") == Some("true"),
            });
        }
        Kind::Other(f) => f,
        Kind::Car(accept_dups) => {
            match q.get("car-version") {
                None | Some("1") => {}
                Some(_) => return Err(RequestError::InvalidParam("car-version")),
            }
            match q.get("car-order") {
                None | Some("dfs" | "unk") => {}
                Some(_) => return Err(RequestError::InvalidParam("car-order")),
            }
            let dups = match q.get("car-dups") {
                Some("y") => true,
                Some("n") => false,
                None => accept_dups.unwrap_or(false),
                Some(_) => return Err(RequestError::InvalidParam("car-dups")),
            };
            let mut scope = match q.get("dag-scope") {
                Some(s) => s
                    .parse::<DagScope>()
                    .map_err(|_| RequestError::InvalidParam("dag-scope"))?,
                None => DagScope::All,
            };
            let entity_bytes = match q.get("entity-bytes") {
                Some(s) => Some(
                    s.parse::<EntityBytes>()
                        .map_err(|_| RequestError::InvalidParam("entity-bytes"))?,
                ),
                None => None,
            };
            if entity_bytes.is_some() {
                scope = DagScope::Entity;
            }
            Format::Car(CarParams {
                scope,
                entity_bytes,
                dups,
            })
        }
    };
    Ok(Negotiated {
        format,
        from_accept,
        filename: q.get("filename").map(str::to_string),
        download: q.get("download") == Some("true"),
    })
}

enum Kind {
    Raw,
    /// `dups` from `Accept`, if it said.
    Car(Option<bool>),
    /// Any other format (never [`Format::Raw`] or [`Format::Car`]).
    Other(Format),
}

#[derive(Debug, PartialEq)]
enum Accepted {
    Raw,
    /// An acceptable CAR variant; `dups` if the entry named it.
    Car {
        dups: Option<bool>,
    },
    /// A CAR variant this gateway cannot produce.
    BadCar,
    /// Another format this gateway produces (`text/html` is `Deserialized { html: true }`).
    Known(Format),
    /// Anything else; `wildcard` for `*/*` and `application/*`.
    Other {
        wildcard: bool,
    },
}

/// The entries of an `Accept` header with q > 0, highest q first (stable), keeping only
/// CAR entries whose `version`, `order` and `dups` this gateway can honour.
fn parse_accept(header: &str) -> Vec<Accepted> {
    let mut entries: Vec<(u32, Accepted)> = Vec::new();
    for range in header.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut q = 1000u32;
        let mut car_ok = true;
        let mut dups = None;
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().trim_matches('"');
            match k.as_str() {
                "q" => q = parse_q(v),
                "version" => car_ok &= v == "1",
                "order" => car_ok &= v == "dfs" || v == "unk",
                "dups" => match v {
                    "y" => dups = Some(true),
                    "n" => dups = Some(false),
                    _ => car_ok = false,
                },
                _ => {}
            }
        }
        if q == 0 {
            continue;
        }
        let accepted = match media.as_str() {
            MEDIA_RAW => Accepted::Raw,
            MEDIA_CAR if car_ok => Accepted::Car { dups },
            MEDIA_CAR => Accepted::BadCar,
            MEDIA_TAR => Accepted::Known(Format::Tar),
            MEDIA_DAG_JSON => Accepted::Known(Format::DagJson),
            MEDIA_DAG_CBOR => Accepted::Known(Format::DagCbor),
            MEDIA_JSON => Accepted::Known(Format::Json),
            MEDIA_CBOR => Accepted::Known(Format::Cbor),
            "text/html" => Accepted::Known(Format::Deserialized { html: true }),
            "*/*" | "application/*" => Accepted::Other { wildcard: true },
            _ => Accepted::Other { wildcard: false },
        };
        entries.push((q, accepted));
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    entries.into_iter().map(|e| e.1).collect()
}

/// `q` value in thousandths (RFC 9110 § 12.4.2: at most three decimals); invalid is 0.
fn parse_q(v: &str) -> u32 {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let frac_val = format!("{frac:0<3}").parse::<u32>().unwrap_or(0);
    match int {
        "1" if frac_val == 0 => 1000,
        "0" => frac_val,
        _ => 0,
    }
}

/// The query string, split into decoded `key=value` pairs (first occurrence of a key wins).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (Some(k), Some(v)) = (percent_decode(k, true), percent_decode(v, true)) else {
                continue;
            };
            if !pairs.iter().any(|(existing, _)| *existing == k) {
                pairs.push((k, v));
            }
        }
        Query(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-decodes `s` (and `+` as a space when `plus_is_space`); `None` for a malformed
/// escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `Content-Disposition: attachment; filename="…"` with an ASCII fallback (non-ASCII,
/// quotes, backslashes and controls replaced by `_`) and, when the name is not plain ASCII,
/// `filename*=UTF-8''…` (path-gateway.md § "`Content-Disposition`", RFC 8187).
pub(crate) fn content_disposition(filename: &str) -> String {
    disposition("attachment", filename)
}

/// `Content-Disposition: {kind}; filename=…` (`kind` is `inline` or `attachment`), encoded
/// as [`content_disposition`].
pub(crate) fn disposition(kind: &str, filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == filename {
        return format!("{kind}; filename=\"{ascii}\"");
    }
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CID: &str = "bafkreifst3pqztuvj57lycamoi7z34b4emf7gawxs74nwrc2c7jncmpaqm";

    fn car(scope: DagScope, entity_bytes: Option<EntityBytes>, dups: bool) -> Format {
        Format::Car(CarParams {
            scope,
            entity_bytes,
            dups,
        })
    }

    #[test]
    fn content_path_parsing() {
        let p = parse_content_path(&format!("{CID}/a%20b/c/"), 8).unwrap();
        assert_eq!(p.cid.to_string(), CID);
        assert_eq!(p.segments, vec!["a b".to_string(), "c".to_string()]);
        assert_eq!(
            parse_content_path("notacid", 8),
            Err(RequestError::InvalidCid)
        );
        assert!(parse_content_path(&format!("{CID}/%zz"), 8).is_err());
        assert!(parse_content_path(&format!("{CID}/%ff"), 8).is_err());
        assert!(parse_content_path(&format!("{CID}/.."), 8).is_err());
        assert!(parse_content_path(&format!("{CID}/a/b/c"), 2).is_err());
    }

    #[test]
    fn format_and_accept() {
        let n = |q: Option<&str>, a: Option<&str>| negotiate(q, a).map(|n| n.format);
        assert_eq!(n(Some("format=raw"), None), Ok(Format::Raw));
        assert_eq!(n(None, Some(MEDIA_RAW)), Ok(Format::Raw));
        assert_eq!(
            n(None, Some(MEDIA_CAR)),
            Ok(car(DagScope::All, None, false))
        );
        // format wins over Accept
        assert_eq!(n(Some("format=raw"), Some(MEDIA_CAR)), Ok(Format::Raw));
        // but CAR params still come from Accept
        assert_eq!(
            n(
                Some("format=car"),
                Some("application/vnd.ipld.car; version=1; order=dfs; dups=y")
            ),
            Ok(car(DagScope::All, None, true))
        );
        // and car-dups overrides them
        assert_eq!(
            n(
                Some("format=car&car-dups=n"),
                Some("application/vnd.ipld.car;dups=y")
            ),
            Ok(car(DagScope::All, None, false))
        );
        // q ordering
        assert_eq!(
            n(
                None,
                Some("application/vnd.ipld.car;q=0.5, application/vnd.ipld.raw")
            ),
            Ok(Format::Raw)
        );
        assert_eq!(
            n(
                None,
                Some("application/vnd.ipld.raw;q=0, application/vnd.ipld.car")
            ),
            Ok(car(DagScope::All, None, false))
        );
        // unsupported CAR variants are skipped
        assert_eq!(
            n(None, Some("application/vnd.ipld.car;version=2")),
            Err(RequestError::NotAcceptable)
        );
        assert_eq!(
            n(
                None,
                Some(
                    "application/vnd.ipld.car;order=foo, application/vnd.ipld.car;order=dfs;dups=y;q=0.5"
                )
            ),
            Ok(car(DagScope::All, None, true))
        );
        let plain = Ok(Format::Deserialized { html: false });
        assert_eq!(n(None, None), plain);
        assert_eq!(n(None, Some("*/*")), plain);
        assert_eq!(n(None, Some("image/png")), plain);
        assert_eq!(
            n(None, Some("text/html,application/xhtml+xml,*/*;q=0.8")),
            Ok(Format::Deserialized { html: true })
        );
        assert_eq!(n(Some("format=tar"), None), Ok(Format::Tar));
        assert_eq!(n(None, Some(MEDIA_TAR)), Ok(Format::Tar));
        assert_eq!(n(Some("format=dag-json"), None), Ok(Format::DagJson));
        assert_eq!(n(None, Some(MEDIA_DAG_CBOR)), Ok(Format::DagCbor));
        assert_eq!(n(Some("format=json"), Some(MEDIA_RAW)), Ok(Format::Json));
        assert_eq!(n(None, Some(MEDIA_CBOR)), Ok(Format::Cbor));
        assert_eq!(
            n(None, Some("application/vnd.ipld.car;version=2, */*")),
            plain
        );
        assert_eq!(
            n(Some("format=bogus"), None),
            Err(RequestError::InvalidParam("format"))
        );
    }

    #[test]
    fn car_query_params() {
        let n = |q: &str| negotiate(Some(q), None).map(|n| n.format);
        assert_eq!(
            n("format=car&dag-scope=block"),
            Ok(car(DagScope::Block, None, false))
        );
        assert_eq!(
            n("format=car&entity-bytes=0:*"),
            Ok(car(
                DagScope::Entity,
                Some(EntityBytes { from: 0, to: None }),
                false
            ))
        );
        for bad in [
            "format=car&dag-scope=x",
            "format=car&entity-bytes=5:1",
            "format=car&car-version=2",
            "format=car&car-order=bfs",
            "format=car&car-dups=maybe",
        ] {
            assert!(
                matches!(n(bad), Err(RequestError::InvalidParam(_))),
                "{bad}"
            );
        }
        let got = negotiate(Some("format=car&filename=a%20b.car"), None).unwrap();
        assert_eq!(got.filename.as_deref(), Some("a b.car"));
        assert!(!got.from_accept);
        assert!(negotiate(None, Some(MEDIA_RAW)).unwrap().from_accept);
    }

    #[test]
    fn disposition_escapes() {
        assert_eq!(
            content_disposition("x.bin"),
            "attachment; filename=\"x.bin\""
        );
        assert_eq!(
            content_disposition("testтест.pdf"),
            "attachment; filename=\"test____.pdf\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.pdf"
        );
        assert!(content_disposition("a\"b\r\n").starts_with("attachment; filename=\"a_b__\""));
    }

    proptest! {
        /// Outside input never panics the parsers.
        #[test]
        fn parsers_total(q in ".{0,64}", a in ".{0,64}", p in ".{0,64}") {
            let _ = negotiate(Some(&q), Some(&a));
            let _ = parse_content_path(&p, 8);
            let _ = content_disposition(&p);
        }

        /// Percent-encoding any string and decoding it gives it back.
        #[test]
        fn percent_roundtrip(s in "\\PC{0,32}") {
            let enc: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
            prop_assert_eq!(percent_decode(&enc, false), Some(s));
        }
    }
}
