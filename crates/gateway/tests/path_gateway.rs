//! End-to-end tests of the deserialized path gateway over a real socket, on
//! gateway-conformance fixtures (testdata/fixtures/gateway-conformance, from
//! ipfs/gateway-conformance, MIT/Apache-2.0; see testdata/fixtures/SOURCES.md) loaded into an
//! in-memory block store. Each test names the upstream test (`tests/*.go` of
//! ipfs/gateway-conformance at 22c76440) whose requests and expectations it follows.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::{Blockstore, BlockstoreError, identity_block};
use hydrant_car::{CarDecoder, Event, Limits};
use hydrant_gateway::{GatewayConfig, router};
use hydrant_unixfs::exporter::{ExportError, list_dir_with, read_file_with, resolve_with};
use reqwest::StatusCode;

/// Blocks in a HashMap; records every CID asked for.
#[derive(Default)]
struct MemBackend {
    blocks: HashMap<Cid, Bytes>,
    reads: Mutex<Vec<Cid>>,
}

#[async_trait]
impl Blockstore for MemBackend {
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(self.blocks.contains_key(cid))
    }

    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError> {
        Ok(self.blocks.get(cid).map(|b| b.len() as u32))
    }

    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(block) = identity_block(cid) {
            return Ok(Some(block));
        }
        self.reads.lock().unwrap().push(*cid);
        Ok(self.blocks.get(cid).cloned())
    }

    async fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let mut out = Vec::new();
        for cid in cids {
            out.push(self.get(cid).await);
        }
        out
    }
}

/// A gateway over one fixture.
struct Gw {
    base: String,
    root: Cid,
    backend: Arc<MemBackend>,
    client: reqwest::Client,
}

impl Gw {
    async fn new(name: &str) -> Gw {
        Gw::with_config(name, GatewayConfig::default()).await
    }

    async fn with_config(name: &str, config: GatewayConfig) -> Gw {
        let bytes = hydrant_testkit::fixture(&format!("gateway-conformance/{name}"));
        let mut decoder = CarDecoder::new(Limits::default());
        decoder.push(&bytes);
        let mut roots = Vec::new();
        let mut blocks = HashMap::new();
        while let Some(event) = decoder.next_event().unwrap() {
            match event {
                Event::Header(h) => roots = h.roots.clone(),
                Event::Section(s) => {
                    blocks.insert(s.cid, s.data.clone());
                }
            }
        }
        let backend = Arc::new(MemBackend {
            blocks,
            ..Default::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(backend.clone(), config);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Gw {
            base: format!("http://{addr}"),
            root: roots[0],
            backend,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, ExportError> {
        Ok(self.backend.blocks.get(cid).cloned())
    }

    /// The CID at `path` under the root (the upstream `fixture.MustGetCid(path...)`).
    fn cid(&self, path: &str) -> Cid {
        resolve_with(self.root, path, |c| self.get_block(c))
            .unwrap()
            .cid
    }

    /// The bytes of the file at `cid` (the upstream `MustGetRawData` of a file).
    fn file(&self, cid: Cid) -> Vec<u8> {
        let mut out = Vec::new();
        read_file_with(
            cid,
            "",
            0,
            None,
            |c| self.get_block(c),
            |b| {
                out.extend_from_slice(&b);
                Ok(())
            },
        )
        .unwrap();
        out
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, headers).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    fn reads(&self) -> Vec<Cid> {
        std::mem::take(&mut *self.backend.reads.lock().unwrap())
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

const DIR_WITH_FILES: &str = "path_gateway_unixfs-dir-with-files.car";
const MISSING: &str = "trustless_gateway_car-file-3k-and-3-blocks-missing-block.car";
const DIR_LISTING: &str = "dir_listing-fixtures.car";
const CACHE: &str = "gateway-cache-fixtures.car";
const SYMLINK: &str = "path_gateway_unixfs-symlink.car";
const JSON_CBOR: &str = "path_gateway_dag-gateway-json-cbor.car";
const DAG_JSON: &str = "path_gateway_dag-dag-json-traversal.car";
const DAG_CBOR: &str = "path_gateway_dag-dag-cbor-traversal.car";
const PLAIN_JSON: &str = "path_gateway_dag-plain-json.car";
const PLAIN_CBOR: &str = "path_gateway_dag-plain-cbor.car";
const TAR: &str = "path_gateway_tar-fixtures.car";
const TAR_OUTSIDE: &str = "path_gateway_tar-outside-root.car";
const TAR_INSIDE: &str = "path_gateway_tar-inside-root.car";
const HAMT: &str = "trustless_gateway_car-single-layer-hamt-with-multi-block-files.car";

/// Follows `TestGatewayUnixFSFileRanges` (path_gateway_unixfs_test.go): `Accept-Ranges`, a
/// single range, a suffix range, several ranges as `multipart/byteranges`; plus an open range
/// and an unsatisfiable one (416).
#[tokio::test]
async fn file_and_ranges() {
    let gw = Gw::new(DIR_WITH_FILES).await;
    let root = gw.root;
    let ascii = gw.file(gw.cid("ascii.txt"));
    assert_eq!(ascii.len(), 31);
    let path = format!("/ipfs/{root}/ascii.txt");

    let resp = gw.get(&path, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&resp, "content-length"), "31");
    assert_eq!(resp.bytes().await.unwrap(), ascii);

    let resp = gw.get(&path, &[("range", "bytes=6-16")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 6-16/31");
    assert_eq!(resp.bytes().await.unwrap(), ascii[6..17]);

    let resp = gw.get(&path, &[("range", "bytes=-3")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 28-30/31");
    assert_eq!(resp.bytes().await.unwrap(), ascii[28..31]);

    let resp = gw.get(&path, &[("range", "bytes=25-")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 25-30/31");
    assert_eq!(resp.bytes().await.unwrap(), ascii[25..31]);

    let resp = gw.get(&path, &[("range", "bytes=31-")]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "content-range"), "bytes */31");

    let resp = gw.get(&path, &[("range", "bytes=6-16,0-4")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let ctype = header(&resp, "content-type");
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart")
        .to_string();
    let length: usize = header(&resp, "content-length").parse().unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    let parts = parse_multipart(&body, &boundary);
    assert_eq!(
        parts,
        vec![
            ("bytes 6-16/31".to_string(), ascii[6..17].to_vec()),
            ("bytes 0-4/31".to_string(), ascii[0..5].to_vec()),
        ]
    );
}

/// Splits a `multipart/byteranges` body into (Content-Range, bytes) per part, checking each
/// part's `Content-Type`.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let text = body.to_vec();
    let mut parts = Vec::new();
    let mut rest = &text[..];
    assert!(
        rest.starts_with(delim.as_bytes()),
        "body starts with a boundary"
    );
    loop {
        rest = &rest[delim.len()..];
        if rest.starts_with(b"--\r\n") {
            assert_eq!(rest.len(), 4, "nothing after the closing boundary");
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part headers end");
        let head = std::str::from_utf8(&rest[2..head_end]).unwrap();
        assert!(
            head.contains("Content-Type: text/plain; charset=utf-8"),
            "{head}"
        );
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("Content-Range")
            .to_string();
        let data_start = head_end + 4;
        let next = find(&rest[data_start..], delim.as_bytes()).expect("next boundary");
        parts.push((range, rest[data_start..data_start + next].to_vec()));
        rest = &rest[data_start + next..];
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Follows `TestGatewayUnixFSFileRanges`, "GET Range of file succeeds even if the gateway is
/// missing a block AFTER/BEFORE the requested range": only the blocks under the range are
/// read (and the file's root block).
#[tokio::test]
async fn ranges_read_only_their_blocks() {
    let gw = Gw::new(MISSING).await;
    let root = gw.root;
    assert_eq!(root.codec(), 0x70);
    for (range, want) in [
        ("bytes=997-1000", "bytes 997-1000/3072"),
        ("bytes=2200-2201", "bytes 2200-2201/3072"),
    ] {
        gw.reads();
        let resp = gw.get(&format!("/ipfs/{root}"), &[("range", range)]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&resp, "content-range"), want);
        assert_eq!(
            resp.bytes().await.unwrap().len(),
            2 + usize::from(range.contains("997")) * 2
        );
        let reads = gw.reads();
        assert!(
            reads.len() <= 3,
            "{range}: root and the leaves under it: {reads:?}"
        );
        assert!(
            reads.iter().all(|c| gw.backend.blocks.contains_key(c)),
            "{range}"
        );
    }
}

/// Follows `TestGatewayJsonCbor` (path_gateway_dag_test.go): a UnixFS file with JSON bytes
/// is `application/json` (from its name, with or without `Accept`), and `?format=json` wins
/// over `Accept: application/vnd.ipld.raw`. Plus: sniffing without a name, `?filename=`
/// (inline) and `?download=true` (attachment), path-gateway.md § "`Content-Disposition`".
#[tokio::test]
async fn content_types_and_disposition() {
    let gw = Gw::new(JSON_CBOR).await;
    let root = gw.root;
    let json_cid = gw.cid("ą/ę/t.json");
    let json = gw.file(json_cid);
    for accept in [None, Some("application/json")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let resp = gw.get(&format!("/ipfs/{root}/ą/ę/t.json"), &headers).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-type"), "application/json");
        assert_eq!(resp.bytes().await.unwrap(), json);
    }
    let resp = gw
        .get(
            &format!("/ipfs/{json_cid}?format=json"),
            &[("accept", "application/vnd.ipld.raw")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(resp.bytes().await.unwrap(), json);

    // No name: sniffed.
    let txt = gw.cid("ą/ę/file-źł.txt");
    let resp = gw.get(&format!("/ipfs/{txt}"), &[]).await;
    assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&resp, "etag"), format!("\"{txt}\""));
    assert!(header(&resp, "content-disposition").is_empty());
    // ?filename= names the type and an inline disposition; download=true an attachment.
    let resp = gw.get(&format!("/ipfs/{txt}?filename=a.png"), &[]).await;
    assert_eq!(header(&resp, "content-type"), "image/png");
    assert_eq!(
        header(&resp, "content-disposition"),
        "inline; filename=\"a.png\""
    );
    let resp = gw
        .get(&format!("/ipfs/{txt}?filename=a.txt&download=true"), &[])
        .await;
    assert_eq!(
        header(&resp, "content-disposition"),
        "attachment; filename=\"a.txt\""
    );
}

/// Follows `TestUnixFSDirectoryListing` (path_gateway_unixfs_test.go): the redirect to the
/// URL with a trailing slash, the listing's breadcrumbs, `..` link, entry link and CID link,
/// no `..` at the root, 404 for a missing entry.
#[tokio::test]
async fn directory_redirect_and_listing() {
    let gw = Gw::new(DIR_LISTING).await;
    let root = gw.root;
    let file = gw.cid("ą/ę/file-źł.txt");

    let resp = gw.get(&format!("/ipfs/{root}/ą/ę"), &[]).await;
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        header(&resp, "location"),
        format!("/ipfs/{root}/%C4%85/%C4%99/")
    );
    let resp = gw.get(&format!("/ipfs/{root}/ą/ę?x=1"), &[]).await;
    assert_eq!(
        header(&resp, "location"),
        format!("/ipfs/{root}/%C4%85/%C4%99/?x=1")
    );

    let resp = gw.get(&format!("/ipfs/{root}/"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Index of"));
    assert!(!html.contains(&format!("<a href=\"/ipfs/{root}/..\">..</a>")));
    assert!(!html.contains(">..</a>"));

    let resp = gw.get(&format!("/ipfs/{root}/ą/ę/"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "etag").starts_with("\"DirIndex-"));
    assert!(header(&resp, "content-type").starts_with("text/html"));
    let html = resp.text().await.unwrap();
    for want in [
        "Index of".to_string(),
        format!(
            "/ipfs/<a href=\"/ipfs/{root}\">{root}</a>/<a href=\"/ipfs/{root}/%C4%85\">ą</a>/<a href=\"/ipfs/{root}/%C4%85/%C4%99\">ę</a>"
        ),
        format!("<a href=\"/ipfs/{root}/%C4%85/%C4%99/..\">..</a>"),
        format!("<a href=\"/ipfs/{root}/%C4%85/%C4%99/file-%C5%BA%C5%82.txt\">file-źł.txt</a>"),
        format!(
            "<a class=\"ipfs-hash\" translate=\"no\" href=\"/ipfs/{file}?filename=file-%25C5%25BA%25C5%2582.txt\">"
        ),
        "</html>".to_string(),
    ] {
        assert!(html.contains(&want), "missing {want} in {html}");
    }

    let resp = gw.get(&format!("/ipfs/{root}/i-do-not-exist"), &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Follows `TestGatewayCache` (path_gateway_unixfs_test.go): headers of a listing, of a
/// directory with `index.html` and of the file itself (`X-Ipfs-Path`, `X-Ipfs-Roots`, `Etag`,
/// `Cache-Control`), and `If-None-Match` (exact, third of a list, weak, wildcard, listing
/// ETag strong and weak) answered 304 without a body.
#[tokio::test]
async fn cache_headers_and_conditional_requests() {
    let gw = Gw::new(CACHE).await;
    let root = gw.root;
    let (c2, c3, c4, c5) = (
        gw.cid("root2"),
        gw.cid("root2/root3"),
        gw.cid("root2/root3/root4"),
        gw.cid("root2/root3/root4/index.html"),
    );

    let resp = gw.get(&format!("/ipfs/{root}/root2/root3/"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "x-ipfs-path"),
        format!("/ipfs/{root}/root2/root3/")
    );
    assert_eq!(header(&resp, "x-ipfs-roots"), format!("{root},{c2},{c3}"));
    let dir_etag = header(&resp, "etag");
    assert!(dir_etag.starts_with("\"DirIndex-"), "{dir_etag}");
    assert!(dir_etag.ends_with(&format!("_CID-{c3}\"")), "{dir_etag}");
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=604800, stale-while-revalidate=2678400"
    );

    let index = gw.file(c5);
    let resp = gw
        .get(&format!("/ipfs/{root}/root2/root3/root4/"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=29030400, immutable"
    );
    assert_eq!(
        header(&resp, "x-ipfs-roots"),
        format!("{root},{c2},{c3},{c4}")
    );
    assert_eq!(header(&resp, "etag"), format!("\"{c4}\""));
    assert!(header(&resp, "content-type").starts_with("text/html"));
    assert_eq!(resp.bytes().await.unwrap(), index);

    let file_path = format!("/ipfs/{root}/root2/root3/root4/index.html");
    let resp = gw.get(&file_path, &[]).await;
    assert_eq!(
        header(&resp, "x-ipfs-path"),
        format!("/ipfs/{root}/root2/root3/root4/index.html")
    );
    assert_eq!(
        header(&resp, "x-ipfs-roots"),
        format!("{root},{c2},{c3},{c4},{c5}")
    );
    assert_eq!(header(&resp, "etag"), format!("\"{c5}\""));

    let conditional = [
        (file_path.clone(), format!("\"{c5}\"")),
        (
            format!("/ipfs/{root}/root2/root3/root4/"),
            format!("\"{c4}\""),
        ),
        (
            file_path.clone(),
            format!("\"fakeEtag1\", \"fakeEtag2\", \"{c5}\""),
        ),
        (file_path.clone(), format!("W/\"{c5}\"")),
        (file_path.clone(), "*".to_string()),
        (format!("/ipfs/{root}/root2/root3/"), dir_etag.clone()),
        (
            format!("/ipfs/{root}/root2/root3/"),
            format!("W/{dir_etag}"),
        ),
    ];
    for (path, tag) in conditional {
        let resp = gw.get(&path, &[("if-none-match", &tag)]).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{path} {tag}");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = gw.get(&file_path, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The listing checks of `TestUnixFSDirectoryListing` on a HAMT-sharded directory (the
/// fixture of `TestTrustlessCarPathing`'s HAMT cases, trustless_gateway_car_test.go): every
/// entry is listed with its link; a listing cap below the entry count gives 501.
#[tokio::test]
async fn hamt_listing() {
    let gw = Gw::new(HAMT).await;
    let root = gw.root;
    let entries = list_dir_with(root, "", false, |c| gw.get_block(c)).unwrap();
    assert!(entries.len() > 1);
    let resp = gw.get(&format!("/ipfs/{root}/"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    for e in &entries {
        let link = format!("<a href=\"/ipfs/{root}/{}\">{}</a>", e.name, e.name);
        assert!(html.contains(&link), "missing {link}");
        assert!(html.contains(&format!("/ipfs/{}?filename=", e.cid)));
    }
    let small = Gw::with_config(
        HAMT,
        GatewayConfig {
            max_listing_entries: 1,
            ..Default::default()
        },
    )
    .await;
    let resp = small.get(&format!("/ipfs/{root}/"), &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
}

/// Follows `TestGatewaySymlink` (path_gateway_unixfs_test.go): the listing names both
/// entries, `?format=raw` of the directory is its block, and the symlink is answered with its
/// target, not followed.
#[tokio::test]
async fn symlink() {
    let gw = Gw::new(SYMLINK).await;
    let root = gw.root;
    let html = gw
        .get(&format!("/ipfs/{root}/"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(">foo<") && html.contains(">bar<"));
    let resp = gw.get(&format!("/ipfs/{root}?format=raw"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), gw.backend.blocks[&root]);
    let resp = gw.get(&format!("/ipfs/{root}/bar"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), &b"foo"[..]);
}

/// Follows `TestNativeDag` and `TestPlainCodec` (path_gateway_dag_test.go): dag-json and
/// dag-cbor blocks as is (no format, `?format=dag-*`, `Accept`), with the plain type for
/// `?format=json|cbor`, their headers (`Content-Type`, `Content-Length`,
/// `Content-Disposition`, `Etag`, `Cache-Control`), `?filename=`, `?download=true`, HEAD,
/// ranges, and the HTML page for `Accept: text/html`; plain json/cbor codecs likewise.
#[tokio::test]
async fn dag_json_and_dag_cbor_blocks() {
    for (fixture, format, disposition) in [
        (DAG_JSON, "json", "inline"),
        (DAG_CBOR, "cbor", "attachment"),
    ] {
        let gw = Gw::new(fixture).await;
        let cid = gw.root;
        let raw = gw.backend.blocks[&cid].clone();
        let dag_type = format!("application/vnd.ipld.dag-{format}");
        for (query, accept, ctype) in [
            (String::new(), None, dag_type.clone()),
            (format!("?format=dag-{format}"), None, dag_type.clone()),
            (String::new(), Some(dag_type.as_str()), dag_type.clone()),
            (
                format!("?format={format}"),
                None,
                format!("application/{format}"),
            ),
        ] {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
            let resp = gw.get(&format!("/ipfs/{cid}{query}"), &headers).await;
            assert_eq!(
                resp.status(),
                StatusCode::OK,
                "{fixture} {query} {accept:?}"
            );
            assert_eq!(header(&resp, "content-type"), ctype);
            assert_eq!(header(&resp, "content-length"), raw.len().to_string());
            assert!(
                header(&resp, "content-disposition")
                    .contains(&format!("{disposition}; filename=\"{cid}.{format}\""))
            );
            assert_eq!(
                header(&resp, "cache-control"),
                "public, max-age=29030400, immutable"
            );
            assert!(!header(&resp, "x-ipfs-path").is_empty());
            assert_eq!(header(&resp, "x-ipfs-roots"), cid.to_string());
            assert_eq!(resp.bytes().await.unwrap(), raw);
        }
        let resp = gw
            .get(&format!("/ipfs/{cid}"), &[("accept", &dag_type)])
            .await;
        assert_eq!(header(&resp, "etag"), format!("\"{cid}.dag-{format}\""));
        assert_eq!(
            header(&resp, "content-location"),
            format!("/ipfs/{cid}?format=dag-{format}")
        );

        let resp = gw
            .get(
                &format!("/ipfs/{cid}?filename=foobar.{format}&download=true"),
                &[("accept", &dag_type)],
            )
            .await;
        assert!(
            header(&resp, "content-disposition")
                .contains(&format!("attachment; filename=\"foobar.{format}\""))
        );

        let resp = gw
            .request(
                reqwest::Method::HEAD,
                &format!("/ipfs/{cid}?format=dag-{format}"),
                &[],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "etag"), format!("\"{cid}.dag-{format}\""));
        assert_eq!(header(&resp, "content-length"), raw.len().to_string());
        assert!(resp.bytes().await.unwrap().is_empty());

        let resp = gw
            .get(&format!("/ipfs/{cid}/"), &[("range", "bytes=1-3")])
            .await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(resp.bytes().await.unwrap(), raw[1..4]);

        let resp = gw
            .get(&format!("/ipfs/{cid}/"), &[("accept", "text/html")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(header(&resp, "etag").contains("DagIndex-"));
        assert!(header(&resp, "content-type").contains("text/html"));
        assert!(header(&resp, "content-disposition").is_empty());
        assert_eq!(
            header(&resp, "cache-control"),
            "public, max-age=604800, stale-while-revalidate=2678400"
        );
        assert!(resp.text().await.unwrap().contains("</html>"));
    }

    for (fixture, format, disposition) in [
        (PLAIN_JSON, "json", "inline"),
        (PLAIN_CBOR, "cbor", "attachment"),
    ] {
        let gw = Gw::new(fixture).await;
        let cid = gw.root;
        for query in ["", "?format="] {
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("{query}{format}")
            };
            let resp = gw.get(&format!("/ipfs/{cid}{query}"), &[]).await;
            assert_eq!(resp.status(), StatusCode::OK, "{fixture}{query}");
            assert_eq!(
                header(&resp, "content-type"),
                format!("application/{format}")
            );
            assert!(
                header(&resp, "content-disposition")
                    .contains(&format!("{disposition}; filename=\"{cid}.{format}\""))
            );
            assert_eq!(resp.bytes().await.unwrap(), gw.backend.blocks[&cid]);
        }
    }
}

/// Follows `TestPathing` and `TestCodecMismatchReturns406` (path_gateway_dag_test.go):
/// traversal through dag-json/dag-cbor links, 501 for a path ending inside a block, 404 for
/// a missing link, 406 for every codec conversion.
#[tokio::test]
async fn dag_pathing_and_codec_mismatch() {
    let gw = Gw::new(DAG_CBOR).await;
    let cid = gw.root;
    let resp = gw
        .get(&format!("/ipfs/{cid}/foo/link/bar?format=dag-cbor"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let want: &[u8] = &[
        0xa1, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x72, 0x74, 0x68, 0x69, 0x73, 0x20, 0x69, 0x73,
        0x20, 0x6e, 0x6f, 0x74, 0x20, 0x61, 0x20, 0x6c, 0x69, 0x6e, 0x6b,
    ];
    assert_eq!(resp.bytes().await.unwrap(), want);
    let status = |path: String, accept: Option<&'static str>| {
        let gw = &gw;
        async move {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
            gw.get(&path, &headers).await.status().as_u16()
        }
    };
    assert_eq!(
        status(format!("/ipfs/{cid}/foo?format=dag-cbor"), None).await,
        501
    );
    assert_eq!(
        status(format!("/ipfs/{cid}/foo/i-do-not-exist"), None).await,
        404
    );
    assert_eq!(
        status(format!("/ipfs/{cid}?format=dag-json"), None).await,
        406
    );
    assert_eq!(
        status(
            format!("/ipfs/{cid}"),
            Some("application/vnd.ipld.dag-json")
        )
        .await,
        406
    );
    assert_eq!(status(format!("/ipfs/{cid}?format=tar"), None).await, 406);

    let gw2 = Gw::new(DAG_JSON).await;
    let cid = gw2.root;
    let resp = gw2
        .get(&format!("/ipfs/{cid}/foo/link/bar?format=dag-json"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let value: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(value, serde_json::json!({"hello": "this is not a link"}));
    for (path, want) in [
        (format!("/ipfs/{cid}/foo?format=dag-json"), 501),
        (format!("/ipfs/{cid}/foo/i-do-not-exist"), 404),
        (format!("/ipfs/{cid}?format=dag-cbor"), 406),
    ] {
        assert_eq!(gw2.get(&path, &[]).await.status().as_u16(), want, "{path}");
    }

    let gw3 = Gw::new(JSON_CBOR).await;
    let file = gw3.cid("ą/ę/file-źł.txt");
    for (query, accept) in [
        ("?format=dag-json", None),
        ("?format=dag-cbor", None),
        ("", Some("application/vnd.ipld.dag-json")),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let resp = gw3.get(&format!("/ipfs/{file}{query}"), &headers).await;
        assert_eq!(
            resp.status(),
            StatusCode::NOT_ACCEPTABLE,
            "{query} {accept:?}"
        );
    }
}

/// Unpacks a tar into (path, kind, content) triples.
fn untar(body: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    let mut archive = tar::Archive::new(body);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((path, kind, data));
    }
    out
}

/// Follows `TestTar` (path_gateway_tar_test.go): a file and a directory as tar (with
/// `?format=tar` and with `Accept: application/x-tar`), their headers, `?filename=`, and the
/// relative-path fixtures (outside the root fails before the status; inside: see below).
#[tokio::test]
async fn tar() {
    let gw = Gw::new(TAR).await;
    let dir = gw.root;
    let file = gw.cid("ą/ę/file-źł.txt");
    let text = b"I am a txt file on path with utf8\n".to_vec();
    for (query, accept) in [("?format=tar", None), ("", Some("application/x-tar"))] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let resp = gw.get(&format!("/ipfs/{file}{query}"), &headers).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(header(&resp, "content-disposition").contains("attachment;"));
        assert!(header(&resp, "etag").contains(&format!("W/\"{file}.x-tar")));
        assert!(header(&resp, "content-type").contains("application/x-tar"));
        let entries = untar(&resp.bytes().await.unwrap());
        assert_eq!(
            entries,
            vec![(file.to_string(), tar::EntryType::Regular, text.clone())]
        );
    }

    let resp = gw.get(&format!("/ipfs/{dir}?format=tar"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let entries = untar(&resp.bytes().await.unwrap());
    let want_path = format!("{dir}/ą/ę/file-źł.txt");
    assert!(
        entries
            .iter()
            .any(|(p, k, d)| *p == want_path && *k == tar::EntryType::Regular && *d == text),
        "{entries:?}"
    );
    assert_eq!(entries[0].0.trim_end_matches('/'), dir.to_string());
    assert_eq!(entries[0].1, tar::EntryType::Directory);

    let resp = gw
        .get(
            &format!("/ipfs/{dir}?filename=testтест.tar&format=tar"),
            &[],
        )
        .await;
    assert!(header(&resp, "content-disposition").contains(
        "attachment; filename=\"test____.tar\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.tar"
    ));

    let outside = Gw::new(TAR_OUTSIDE).await;
    let resp = outside
        .get(&format!("/ipfs/{}?format=tar", outside.root), &[])
        .await;
    assert!(
        (400..600).contains(&resp.status().as_u16()),
        "{}",
        resp.status()
    );

    // Upstream expects `{root}/foobar/file` from an entry `foobar/directory/../file`: names
    // with `..` are refused by the UnixFS exporter (unixfs.md § "Restricted Names"), found
    // below the root once the tar has started, so the body is cut short (never a complete
    // tar missing the entry).
    let inside = Gw::new(TAR_INSIDE).await;
    let root = inside.root;
    let resp = inside.get(&format!("/ipfs/{root}?format=tar"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.is_err());
}

/// Follows the HEAD cases of `TestNativeDag` ("HEAD … returns HTTP 200" with
/// `Content-Type`/`Content-Length`), applied to a UnixFS file, a listing and a tar: the
/// headers of GET, no body.
#[tokio::test]
async fn head_has_headers_without_body() {
    let gw = Gw::new(DIR_WITH_FILES).await;
    let root = gw.root;
    for path in [
        format!("/ipfs/{root}/ascii.txt"),
        format!("/ipfs/{root}/"),
        format!("/ipfs/{root}?format=tar"),
    ] {
        let get = gw.get(&path, &[]).await;
        let head = gw.request(reqwest::Method::HEAD, &path, &[]).await;
        assert_eq!(get.status(), head.status(), "{path}");
        for name in ["content-type", "content-length", "etag", "x-ipfs-roots"] {
            assert_eq!(header(&get, name), header(&head, name), "{path} {name}");
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
        assert!(!get.bytes().await.unwrap().is_empty(), "{path}");
    }
}
