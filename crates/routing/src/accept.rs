//! Choice between `application/json` and streaming `application/x-ndjson` responses.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "Streaming": requests without
//! `Accept: application/x-ndjson` MUST get plain JSON, and the server MUST NOT stream unless
//! the client explicitly asked for it.

/// `application/json`.
pub const MEDIA_JSON: &str = "application/json";
/// `application/x-ndjson`.
pub const MEDIA_NDJSON: &str = "application/x-ndjson";

/// Most media ranges read from the `Accept` headers; the rest are ignored.
pub const MAX_ACCEPT_ENTRIES: usize = 32;

/// The body format of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `application/json`: one object holding a bounded list.
    Json,
    /// `application/x-ndjson`: one record per line.
    NdJson,
}

impl ResponseFormat {
    /// The `Content-Type` value of this format.
    pub fn media_type(self) -> &'static str {
        match self {
            ResponseFormat::Json => MEDIA_JSON,
            ResponseFormat::NdJson => MEDIA_NDJSON,
        }
    }
}

/// Chooses the response format from the values of the request's `Accept` headers.
///
/// NDJSON is chosen only when `application/x-ndjson` is listed explicitly with a q-value
/// above 0 that is at least the q-value JSON gets (from `application/json`, else
/// `application/*`, else `*/*`, the most specific range deciding, per RFC 9110 § 12.5.1).
/// Everything else is JSON, including no header, `*/*`, only unrelated types and malformed
/// values: the spec makes JSON the default and has no 406 for these endpoints. Media type
/// names are case-insensitive; parameters other than `q` are ignored; a malformed `q`
/// drops its range. At most [`MAX_ACCEPT_ENTRIES`] ranges are read.
pub fn negotiate<'a>(accept_values: impl IntoIterator<Item = &'a str>) -> ResponseFormat {
    let mut nd_q: Option<u16> = None;
    // (specificity, q): 2 = application/json, 1 = application/*, 0 = */*.
    let mut json: Option<(u8, u16)> = None;
    let ranges = accept_values
        .into_iter()
        .flat_map(|v| v.split(','))
        .take(MAX_ACCEPT_ENTRIES);
    for range in ranges {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = Some(1000u16);
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = parse_q(v.trim());
            }
        }
        let Some(q) = q else { continue };
        let spec = match media.as_str() {
            MEDIA_NDJSON => {
                nd_q = Some(nd_q.map_or(q, |old| old.max(q)));
                continue;
            }
            MEDIA_JSON => 2,
            "application/*" => 1,
            "*/*" => 0,
            _ => continue,
        };
        json = match json {
            Some((s, old)) if s > spec => Some((s, old)),
            Some((s, old)) if s == spec => Some((s, old.max(q))),
            _ => Some((spec, q)),
        };
    }
    match nd_q {
        Some(nd) if nd > 0 && nd >= json.map_or(0, |(_, q)| q) => ResponseFormat::NdJson,
        _ => ResponseFormat::Json,
    }
}

/// An RFC 9110 `qvalue` in thousandths: `0`, `1`, `0.x`, `0.xx`, `0.xxx`, `1.0`…`1.000`.
pub(crate) fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::ResponseFormat::{Json, NdJson};
    use super::*;
    use proptest::prelude::*;

    fn n(v: &str) -> ResponseFormat {
        negotiate([v])
    }

    #[test]
    fn defaults_to_json() {
        assert_eq!(negotiate([]), Json);
        assert_eq!(n(""), Json);
        assert_eq!(n("*/*"), Json);
        assert_eq!(n("application/json"), Json);
        assert_eq!(n("text/html"), Json);
        assert_eq!(n("garbage;;;=="), Json);
    }

    #[test]
    fn ndjson_only_when_explicit() {
        assert_eq!(n("application/x-ndjson"), NdJson);
        assert_eq!(n("Application/X-NDJSON"), NdJson);
        assert_eq!(n("application/x-ndjson, application/json"), NdJson);
        assert_eq!(n("application/json, application/x-ndjson"), NdJson);
        assert_eq!(
            negotiate(["application/json", "application/x-ndjson"]),
            NdJson
        );
        assert_eq!(n("application/x-ndjson;q=0"), Json);
        assert_eq!(n("application/*"), Json);
    }

    #[test]
    fn q_values_decide() {
        assert_eq!(
            n("application/json;q=0.9, application/x-ndjson;q=0.5"),
            Json
        );
        assert_eq!(
            n("application/json;q=0.4, application/x-ndjson;q=0.5"),
            NdJson
        );
        assert_eq!(n("application/x-ndjson;q=0.5, */*"), Json);
        assert_eq!(n("application/x-ndjson;q=0.5, */*;q=0.1"), NdJson);
        // The most specific range decides JSON's q.
        assert_eq!(
            n("application/json;q=0.1, */*;q=1, application/x-ndjson;q=0.5"),
            NdJson
        );
        // A malformed q drops its range.
        assert_eq!(n("application/x-ndjson;q=2"), Json);
        assert_eq!(n("application/x-ndjson;q=abc"), Json);
    }

    #[test]
    fn q_parsing() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.005"), Some(5));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.0001"), None);
        assert_eq!(parse_q("-0"), None);
    }

    proptest! {
        #[test]
        fn never_panics(v in "\\PC{0,200}") {
            let _ = negotiate([v.as_str()]);
        }

        /// Without the literal NDJSON media type the answer is always JSON.
        #[test]
        fn no_ndjson_without_asking(v in "[a-z/*;=., 0-9]{0,80}") {
            prop_assume!(!v.contains("x-ndjson"));
            prop_assert_eq!(negotiate([v.as_str()]), Json);
        }
    }
}
