//! The generated HTML: directory listings (path-gateway.md § "Generated HTML with directory
//! index") and the page a browser gets for a dag-json/dag-cbor block.

use super::*;

/// A UnixFS directory: redirect, `index.html`, or a listing.
pub(super) async fn serve_directory(
    ctx: &Ctx<'_>,
    target: Target,
    range: Option<&str>,
) -> Result<Response, GatewayError> {
    if !ctx.uri.path().ends_with('/') {
        // path-gateway.md § "Use in directory URL normalization": 301 with a trailing slash.
        let location = match ctx.uri.query() {
            Some(q) => format!("{}/?{q}", ctx.uri.path()),
            None => format!("{}/", ctx.uri.path()),
        };
        let mut headers = HeaderMap::new();
        insert(&mut headers, header::LOCATION, &location);
        return Ok((StatusCode::MOVED_PERMANENTLY, headers, Body::empty()).into_response());
    }
    let index = ["index.html".to_string()];
    match resolve(ctx.state, target.cid, target.data.clone(), &index).await {
        Ok((_, cid, _, data)) if matches!(unixfs_kind(&cid, &data), Ok(UnixFsKind::File)) => {
            let file = FileTarget {
                cid,
                data,
                etag: format!("\"{}\"", target.cid),
                name: Some("index.html".into()),
            };
            return serve_file(ctx, file, &target.roots, None, range).await;
        }
        Ok(_) | Err(GatewayError::PathNotFound) => {}
        Err(e) => return Err(e),
    }
    serve_listing(ctx, &target).await
}

/// The HTML listing of a directory (path-gateway.md § "Generated HTML with directory
/// index"): names linked to their paths, CIDs linked to `/ipfs/{cid}?filename=`, `Tsize`s, a
/// `..` link below the root.
pub(super) async fn serve_listing(
    ctx: &Ctx<'_>,
    target: &Target,
) -> Result<Response, GatewayError> {
    let etag = format!("\"DirIndex-{HTML_VERSION}_CID-{}\"", target.cid);
    let common = ctx.common(&etag, &target.roots, None);
    if let Some(unchanged) = ctx.unchanged(&common) {
        return Ok(unchanged);
    }
    let limit = ctx.state.config.max_listing_entries;
    let path = ctx.uri.path().to_string();
    let mut lister = DirLister::new(target.cid, path.clone(), false);
    while let Some(cid) = lister.next_wanted()? {
        let data = if cid == target.cid {
            target.data.clone()
        } else {
            ctx.state.blocks.get(&cid).await?.ok_or_else(|| {
                GatewayError::Export(ExportError::MissingBlock {
                    cid,
                    path: path.clone(),
                })
            })?
        };
        lister.on_block(&cid, &data)?;
        if lister.entries_read() > limit {
            return Err(GatewayError::ListingTooLarge { limit });
        }
    }
    let entries = lister.finish()?;
    let root = target.roots[0];
    let mut base = format!("/ipfs/{root}");
    let mut crumbs = format!("/ipfs/<a href=\"{base}\">{root}</a>");
    for segment in &target.segments {
        base.push('/');
        base.push_str(&encode_segment(segment));
        let _ = write!(crumbs, "/<a href=\"{base}\">{}</a>", escape_html(segment));
    }
    let mut html = page_head(&format!("{}/", ctx.uri.path().trim_end_matches('/')));
    let dir = target.cid;
    let _ = write!(
        html,
        "<h1>Index of {crumbs}</h1>\n<p><code>{dir}</code> · {} entries · \
         <a href=\"/ipfs/{dir}?format=car\">CAR</a> · \
         <a href=\"/ipfs/{dir}?format=tar\">tar</a> · \
         <a href=\"/ipfs/{dir}?format=raw\">raw block</a></p>\n\
         <table>\n<tr><th>Name</th><th>CID</th><th>DAG size</th></tr>\n",
        entries.len()
    );
    if !target.segments.is_empty() {
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{base}/..\">..</a></td><td></td><td></td></tr>"
        );
    }
    for entry in &entries {
        let encoded = encode_segment(&entry.name);
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{base}/{encoded}\">{}</a></td>\
             <td><a class=\"ipfs-hash\" translate=\"no\" href=\"/ipfs/{}?filename={}\">{}</a></td>\
             <td>{}</td></tr>",
            escape_html(&entry.name),
            entry.cid,
            encode_segment(&encoded),
            entry.cid,
            entry.tsize.map_or_else(String::new, human_size),
        );
    }
    html.push_str("</table>\n</body>\n</html>\n");
    Ok(html_response(ctx, &common, html))
}

/// The start of a generated page, up to `<body>`.
pub(super) fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{padding:.2em .8em;text-align:left}}\
         tr:nth-child(even){{background:#f4f4f4}}.ipfs-hash{{font-family:monospace}}\
         </style>\n</head>\n<body>\n",
        escape_html(title)
    )
}

/// A generated HTML page: `text/html`, its own `Cache-Control`, no `Content-Disposition`.
pub(super) fn html_response(ctx: &Ctx<'_>, common: &Common<'_>, html: String) -> Response {
    let mut headers = common.headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(HTML_CACHE_CONTROL),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(html.len()));
    let body = if ctx.head {
        Body::empty()
    } else {
        Body::from(html)
    };
    (StatusCode::OK, headers, body).into_response()
}

/// Percent-encodes a path segment: everything but RFC 3986 unreserved characters.
pub(super) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Escapes text for HTML content and double-quoted attributes.
pub(super) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `n` bytes for humans: `31 B`, `1.5 KiB`, `2.0 MiB`.
pub(super) fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The HTML page of a dag-json or dag-cbor block for a browser (path-gateway.md § "Response
/// Payload": "generated HTML with an option to download DAG-JSON as-is").
pub(super) fn dag_page(ctx: &Ctx<'_>, target: &Target) -> Response {
    let etag = format!("\"DagIndex-{HTML_VERSION}_CID-{}\"", target.cid);
    let common = ctx.common(&etag, &target.roots, None);
    if let Some(unchanged) = ctx.unchanged(&common) {
        return unchanged;
    }
    let cid = target.cid;
    let (codec, format) = if cid.codec() == CODEC_DAG_JSON {
        ("dag-json", "dag-json")
    } else {
        ("dag-cbor", "dag-cbor")
    };
    let mut html = page_head(&format!("{cid} ({codec})"));
    let _ = write!(
        html,
        "<h1>{codec} block <code>{cid}</code></h1>\n<p>{} bytes. Download: \
         <a href=\"/ipfs/{cid}?format={format}\">{codec}</a> · \
         <a href=\"/ipfs/{cid}?format=raw\">raw block</a> · \
         <a href=\"/ipfs/{cid}?format=car\">CAR</a></p>\n",
        target.data.len()
    );
    if cid.codec() == CODEC_DAG_JSON
        && let Ok(text) = std::str::from_utf8(&target.data)
    {
        let _ = writeln!(html, "<pre>{}</pre>", escape_html(text));
    }
    html.push_str("</body>\n</html>\n");
    html_response(ctx, &common, html)
}
