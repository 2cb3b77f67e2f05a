//! What the bytes are: the `Range` header against a known size (RFC 9110 § 14.2) and the
//! `Content-Type` of a file from its name or its first bytes (path-gateway.md § "Response
//! Payload": "MUST ... sniffing").

use super::*;

/// A parsed `Range` header against a content of known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable `Range` (absent, malformed, another unit, more than [`MAX_RANGES`]): send
    /// the whole content with 200.
    Ignore,
    /// The satisfiable ranges, in request order (at least one).
    Satisfiable(Vec<ByteRange>),
    /// Well-formed, but no range names a byte of the content: 416.
    Unsatisfiable,
}

/// One satisfiable byte range, both ends inclusive (`start <= end < size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// Parses `Range: bytes=…` (RFC 9110 § 14.1.2: `a-b`, open `a-`, suffix `-n`, several
/// separated by commas) against a content of `size` bytes. Ends past the content are
/// clamped; ranges starting past it are dropped. Outside input: never panics.
pub fn parse_range(header: &str, size: u64) -> Ranges {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return Ranges::Ignore;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Ignore;
    }
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let mut out = Vec::new();
    let mut count = 0;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        count += 1;
        if count > MAX_RANGES {
            return Ranges::Ignore;
        }
        let Some((a, b)) = part.split_once('-') else {
            return Ranges::Ignore;
        };
        if a.trim().is_empty() {
            let Some(n) = num(b) else {
                return Ranges::Ignore;
            };
            if n > 0 && size > 0 {
                out.push(ByteRange {
                    start: size.saturating_sub(n),
                    end: size - 1,
                });
            }
            continue;
        }
        let Some(start) = num(a) else {
            return Ranges::Ignore;
        };
        let end = if b.trim().is_empty() {
            u64::MAX
        } else {
            match num(b) {
                Some(end) if end >= start => end,
                _ => return Ranges::Ignore,
            }
        };
        if start < size {
            out.push(ByteRange {
                start,
                end: end.min(size - 1),
            });
        }
    }
    if count == 0 {
        Ranges::Ignore
    } else if out.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Satisfiable(out)
    }
}

/// The media type of a file named `name`, from its extension (case-insensitive), for the
/// common web types; `None` for an unknown or missing extension (then the bytes are sniffed).
/// Text types carry `charset=utf-8` as Go's `mime` table does (path-gateway.md
/// § "`Content-Type` (response header)").
pub fn content_type_for_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "text" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "md" | "markdown" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "text/xml; charset=utf-8",
        "json" => "application/json",
        "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "car" => "application/vnd.ipld.car",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/vnd.microsoft.icon",
        "bmp" => "image/bmp",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        _ => return None,
    })
}

/// The media type of content starting with `head` (at most its first 512 bytes count), as
/// the WHATWG MIME sniffing algorithm does for the common cases: HTML, SVG, PNG, JPEG, GIF,
/// WebP, PDF, then `text/plain; charset=utf-8` for UTF-8 without binary control bytes, else
/// `application/octet-stream` (path-gateway.md § "`Content-Type` (response header)").
pub fn sniff_content_type(head: &[u8]) -> &'static str {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if head.starts_with(b"\xff\xd8\xff") {
        return "image/jpeg";
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return "image/gif";
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    if head.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let trimmed = {
        let start = text
            .iter()
            .position(|b| !b" \t\n\r\x0c".contains(b))
            .unwrap_or(text.len());
        &text[start..]
    };
    let lower: Vec<u8> = trimmed
        .iter()
        .take(64)
        .map(u8::to_ascii_lowercase)
        .collect();
    for tag in [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<br",
        b"<p",
        b"<!--",
    ] {
        if lower.starts_with(tag) {
            let next = lower.get(tag.len()).copied();
            if tag == b"<!--" || matches!(next, Some(b' ' | b'>')) {
                return "text/html; charset=utf-8";
            }
        }
    }
    if lower.starts_with(b"<svg") || (lower.starts_with(b"<?xml") && contains(trimmed, b"<svg")) {
        return "image/svg+xml";
    }
    if lower.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    let binary = text
        .iter()
        .any(|b| matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f));
    // A multi-byte character cut at the end of the sniffed bytes is still text.
    let utf8 = match std::str::from_utf8(text) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if !binary && utf8 {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
