//! Fuzz target: the request parsers of the gateway.
//!
//! Input layout: lossy UTF-8, split on `\n` into up to five fields:
//! `query \n accept \n content-path \n entity-bytes \n dag-scope`. A missing query or accept
//! field is `None`. Calls `hydrant_gateway::negotiate`, `parse_content_path(path, 64)`,
//! `str::parse::<EntityBytes>` and `str::parse::<DagScope>`. Checks: no panic; a parsed path
//! has at most 64 segments, none empty, `.` or `..`; a parsed `entity-bytes` resolves to a
//! range inside the file; `DagScope` round-trips through `as_str`. The `entity-bytes` field is
//! also parsed as a `Range` header (`parse_range`): every satisfiable range lies inside the
//! content. `sniff_content_type` of the whole input and `content_type_for_name` of the path
//! must not panic.
#![no_main]

use hydrant_gateway::{
    Format, Ranges, content_type_for_name, negotiate, parse_content_path, parse_range,
    sniff_content_type,
};
use hydrant_unixfs::{DagScope, EntityBytes};
use libfuzzer_sys::fuzz_target;

const MAX_SEGMENTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let query = fields.next();
    let accept = fields.next();
    let path = fields.next().unwrap_or_default();
    let entity = fields.next().unwrap_or_default();
    let scope = fields.next().unwrap_or_default();

    if let Ok(n) = negotiate(query, accept) {
        if let Format::Car(p) = n.format {
            if p.entity_bytes.is_some() {
                assert_eq!(p.scope, DagScope::Entity, "entity-bytes without entity scope");
            }
        }
    }
    // The same strings as query parameters, so negotiate's inner parsers see them too.
    let q = format!("format=car&entity-bytes={entity}&dag-scope={scope}");
    let _ = negotiate(Some(&q), accept);

    if let Ok(p) = parse_content_path(path, MAX_SEGMENTS) {
        assert!(p.segments.len() <= MAX_SEGMENTS, "too many segments accepted");
        for s in &p.segments {
            assert!(!s.is_empty() && s != "." && s != "..", "bad segment {s:?} accepted");
        }
    }

    for s in [entity, path, scope] {
        if let Ok(range) = s.parse::<EntityBytes>() {
            for size in [0u64, 1, 2, 1000, u64::MAX / 2, u64::MAX] {
                if let Some((first, last)) = range.resolve(size) {
                    assert!(first <= last && last < size, "{range:?} resolves out of {size}");
                }
            }
        }
    }
    for size in [0u64, 1, 31, 1000, u64::MAX] {
        if let Ranges::Satisfiable(list) = parse_range(entity, size) {
            assert!(!list.is_empty());
            for r in list {
                assert!(r.start <= r.end && r.end < size, "{r:?} out of {size}");
            }
        }
    }
    let _ = sniff_content_type(data);
    let _ = content_type_for_name(path);

    if let Ok(parsed) = scope.parse::<DagScope>() {
        assert_eq!(parsed.as_str().parse::<DagScope>(), Ok(parsed));
    }
});
