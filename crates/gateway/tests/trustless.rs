//! End-to-end tests of the trustless gateway over a real socket, on gateway-conformance
//! fixtures loaded into an in-memory backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use hydrant_blocks::{Blockstore, BlockstoreError, identity_block};
use hydrant_car::{CarDecoder, Event, Limits, verify_block};
use hydrant_gateway::{
    CarRequest, CarStreamError, CarStreamOptions, GatewayConfig, car_stream, router,
};
use hydrant_unixfs::{DagScope, DataType, PbLink, PbNode, UnixFsData};
use multihash_codetable::{Code, MultihashDigest};
use reqwest::StatusCode;

const DUP_FILES: &str = "trustless_gateway_car-dir-with-duplicate-files.car";
const MIXED: &str = "trustless_gateway_car-subdir-with-mixed-block-files.car";
const TWO_SINGLE: &str = "trustless_gateway_car-subdir-with-two-single-block-files.car";
const MISSING: &str = "trustless_gateway_car-file-3k-and-3-blocks-missing-block.car";
const HAMT: &str = "trustless_gateway_car-single-layer-hamt-with-multi-block-files.car";
const CBOR_LINKS: &str = "trustless_gateway_car-dir-with-dag-cbor-with-links.car";

/// The five leaves of "multiblock.txt" (256, 256, 256, 256, 2 bytes), as the
/// gateway-conformance tests list them.
const MULTIBLOCK_LEAVES: [&str; 5] = [
    "bafkreie5noke3mb7hqxukzcy73nl23k6lxszxi5w3dtmuwz62wnvkpsscm",
    "bafkreih4ephajybraj6wnxsbwjwa77fukurtpl7oj7t7pfq545duhot7cq",
    "bafkreigu7buvm3cfunb35766dn7tmqyh2um62zcio63en2btvxuybgcpue",
    "bafkreicll3huefkc3qnrzeony7zcfo7cr3nbx64hnxrqzsixpceg332fhe",
    "bafkreifst3pqztuvj57lycamoi7z34b4emf7gawxs74nwrc2c7jncmpaqm",
];
const MULTIBLOCK: &str = "bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa";
const ASCII: &str = "bafkreifkam6ns4aoolg3wedr4uzrs3kvq66p4pecirz6y2vlrngla62mxm";
const HELLO: &str = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4";

/// Blocks in a HashMap; records the size of every `get_many` batch; `fail_with` injects a
/// store failure for every block.
#[derive(Default)]
struct MemBackend {
    blocks: HashMap<Cid, Bytes>,
    batches: Mutex<Vec<usize>>,
    fail_with: Option<fn(Cid) -> BlockstoreError>,
}

#[async_trait]
impl Blockstore for MemBackend {
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(self.get(cid).await?.is_some())
    }

    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError> {
        Ok(self.get(cid).await?.map(|b| b.len() as u32))
    }

    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(block) = identity_block(cid) {
            return Ok(Some(block));
        }
        if let Some(f) = self.fail_with {
            return Err(f(*cid));
        }
        Ok(self.blocks.get(cid).cloned())
    }

    async fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        self.batches.lock().unwrap().push(cids.len());
        let mut out = Vec::new();
        for cid in cids {
            out.push(self.get(cid).await);
        }
        out
    }
}

fn fixture(name: &str) -> (Cid, HashMap<Cid, Bytes>) {
    let bytes = hydrant_testkit::fixture(&format!("gateway-conformance/{name}"));
    let (roots, blocks) = parse_car(&bytes).expect("fixture is a valid CAR");
    (roots[0], blocks.into_iter().collect())
}

/// Decodes a CARv1 and verifies every block's hash.
/// Roots and blocks of a CAR.
type CarContents = (Vec<Cid>, Vec<(Cid, Bytes)>);

fn parse_car(bytes: &[u8]) -> Result<CarContents, String> {
    let mut decoder = CarDecoder::new(Limits::default());
    decoder.push(bytes);
    let mut roots = Vec::new();
    let mut blocks = Vec::new();
    while let Some(event) = decoder.next_event().map_err(|e| e.to_string())? {
        match event {
            Event::Header(h) => roots = h.roots.clone(),
            Event::Section(s) => {
                verify_block(&s.cid, &s.data).map_err(|e| e.to_string())?;
                blocks.push((s.cid, s.data.clone()));
            }
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    Ok((roots, blocks))
}

fn cids(list: &[&str]) -> Vec<Cid> {
    list.iter().map(|s| Cid::try_from(*s).unwrap()).collect()
}

async fn serve(backend: Arc<MemBackend>, config: GatewayConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(backend, config);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

async fn serve_fixture(name: &str) -> (String, Cid, Arc<MemBackend>) {
    let (root, blocks) = fixture(name);
    let backend = Arc::new(MemBackend {
        blocks,
        ..Default::default()
    });
    (
        serve(backend.clone(), GatewayConfig::default()).await,
        root,
        backend,
    )
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// GETs a CAR and returns its blocks' CIDs in order (every block verified).
async fn get_car(url: &str, accept: Option<&str>) -> (reqwest::Response, Vec<Cid>) {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    let headers_only = reqwest::Response::from(
        axum::http::Response::builder()
            .status(resp.status().as_u16())
            .body(Vec::<u8>::new())
            .unwrap(),
    );
    let mut kept = headers_only;
    *kept.headers_mut() = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    let (roots, blocks) = parse_car(&body).unwrap();
    assert_eq!(roots.len(), 1);
    (kept, blocks.into_iter().map(|b| b.0).collect())
}

#[tokio::test]
async fn raw_blocks_hash_to_their_cid_with_spec_headers() {
    let (base, root, backend) = serve_fixture(MIXED).await;
    let client = reqwest::Client::new();
    for cid in backend.blocks.keys() {
        let resp = client
            .get(format!("{base}/ipfs/{cid}?format=raw"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header(&resp, "content-type").unwrap(),
            "application/vnd.ipld.raw"
        );
        assert_eq!(header(&resp, "etag").unwrap(), format!("\"{cid}.raw\""));
        assert_eq!(
            header(&resp, "cache-control").unwrap(),
            "public, max-age=29030400, immutable"
        );
        assert_eq!(
            header(&resp, "x-ipfs-path").unwrap(),
            format!("/ipfs/{cid}")
        );
        assert_eq!(header(&resp, "x-ipfs-roots").unwrap(), cid.to_string());
        assert_eq!(header(&resp, "x-content-type-options").unwrap(), "nosniff");
        assert_eq!(
            header(&resp, "content-disposition").unwrap(),
            format!("attachment; filename=\"{cid}.bin\"")
        );
        assert_eq!(header(&resp, "vary").unwrap(), "Accept");
        assert!(header(&resp, "content-location").is_none());
        let len: usize = header(&resp, "content-length").unwrap().parse().unwrap();
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len(), len);
        verify_block(cid, &body).unwrap();
    }
    // Accept instead of ?format: same body, plus Content-Location; custom filename
    let resp = client
        .get(format!("{base}/ipfs/{root}?filename=foo%20bar.bin"))
        .header("accept", "application/vnd.ipld.raw")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-location").unwrap(),
        format!("/ipfs/{root}?filename=foo%20bar.bin&format=raw")
    );
    assert_eq!(
        header(&resp, "content-disposition").unwrap(),
        "attachment; filename=\"foo bar.bin\""
    );
    verify_block(&root, &resp.bytes().await.unwrap()).unwrap();
}

#[tokio::test]
async fn if_none_match_and_head() {
    let (base, root, backend) = serve_fixture(MIXED).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/ipfs/{root}?format=raw");
    let etag = format!("\"{root}.raw\"");
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let resp = client
            .get(&url)
            .header("if-none-match", inm)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&resp, "etag").unwrap(), etag);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = client
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // CAR: first response's ETag makes the second a 304
    let car_url = format!("{base}/ipfs/{root}?format=car&dag-scope=entity");
    let first = client.get(&car_url).send().await.unwrap();
    let car_etag = header(&first, "etag").unwrap();
    assert!(car_etag.contains(".car.entity."), "{car_etag}");
    let again = client
        .get(&car_url)
        .header("if-none-match", &car_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let other_scope = client
        .get(format!("{base}/ipfs/{root}?format=car&dag-scope=all"))
        .header("if-none-match", &car_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(other_scope.status(), StatusCode::OK);

    // HEAD: headers, no body
    let resp = client.head(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-length").unwrap(),
        backend.blocks[&root].len().to_string()
    );
    assert_eq!(header(&resp, "etag").unwrap(), etag);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client
        .head(format!("{base}/ipfs/{root}?format=car"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        header(&resp, "content-type")
            .unwrap()
            .starts_with("application/vnd.ipld.car")
    );
    assert!(resp.bytes().await.unwrap().is_empty());
    let absent = Cid::new_v1(0x55, Code::Sha2_256.digest(b"absent"));
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        for format in ["raw", "car"] {
            let resp = client
                .request(
                    method.clone(),
                    format!("{base}/ipfs/{absent}?format={format}"),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {format}");
        }
    }
}

#[tokio::test]
async fn status_codes() {
    let (base, root, _) = serve_fixture(TWO_SINGLE).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let absent = Cid::new_v1(0x55, Code::Sha2_256.digest(b"absent"));
    type Case<'a> = (String, Option<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("/ipfs/not-a-cid?format=raw".to_string(), None, 400),
        // No trustless format: deserialized (the root is a directory: redirect to its `/`).
        (format!("/ipfs/{root}"), None, 301),
        (format!("/ipfs/{root}"), Some(("accept", "*/*")), 301),
        (format!("/ipfs/{root}"), Some(("accept", "text/html")), 301),
        (format!("/ipfs/{root}/"), None, 200),
        (format!("/ipfs/{root}?format=tar"), None, 200),
        // No codec conversions (IPIP-0524): dag-json of a dag-pb directory.
        (format!("/ipfs/{root}?format=dag-json"), None, 406),
        (format!("/ipfs/{root}?format=nonsense"), None, 400),
        (
            format!("/ipfs/{root}"),
            Some(("accept", "application/vnd.ipld.car; version=2")),
            406,
        ),
        (format!("/ipfs/{root}/subdir?format=raw"), None, 400),
        (
            format!("/ipfs/{root}?format=car&dag-scope=everything"),
            None,
            400,
        ),
        (
            format!("/ipfs/{root}?format=car&entity-bytes=9:2"),
            None,
            400,
        ),
        (format!("/ipfs/{root}?format=car&car-dups=x"), None, 400),
        (
            format!("/ipfs/{root}/subdir/i-do-not-exist?format=car"),
            None,
            404,
        ),
        (
            format!("/ipfs/{root}/subdir/ascii.txt/below?format=car"),
            None,
            404,
        ),
        (format!("/ipfs/{absent}?format=raw"), None, 404),
        (
            format!("/ipfs/{absent}?format=raw"),
            Some(("cache-control", "only-if-cached")),
            412,
        ),
        (
            format!("/ipfs/{root}?format=raw"),
            Some(("cache-control", "only-if-cached")),
            200,
        ),
        (
            format!("/ipfs/{root}?format=raw"),
            Some(("service-worker", "script")),
            400,
        ),
        ("/ipns/example.com?format=raw".to_string(), None, 501),
    ];
    for (path, hdr, want) in cases {
        let mut req = client.get(format!("{base}{path}"));
        if let Some((k, v)) = hdr {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path} {hdr:?}");
        if want >= 400 {
            let text = resp.text().await.unwrap();
            assert!(text.len() < 300 && !text.is_empty(), "{path}: {text}");
        }
    }
}

#[tokio::test]
async fn backend_errors_are_5xx_with_retry_after_and_no_leak() {
    type Failure = fn(Cid) -> BlockstoreError;
    let cases: [(Failure, u16); 3] = [
        (
            |_| BlockstoreError::Storage {
                key: "cars/secret.car".into(),
                start: 0,
                end: 1,
                detail: "s3 secret-bucket unreachable".into(),
            },
            502,
        ),
        (
            |cid| BlockstoreError::Index {
                cid,
                detail: "secret-db down".into(),
            },
            502,
        ),
        (
            |cid| BlockstoreError::Corrupt {
                cid,
                key: "cars/secret.car".into(),
                offset: 7,
            },
            500,
        ),
    ];
    let client = reqwest::Client::new();
    for (fail, want) in cases {
        let backend = Arc::new(MemBackend {
            fail_with: Some(fail),
            ..Default::default()
        });
        let base = serve(backend, GatewayConfig::default()).await;
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(b"x"));
        for format in ["raw", "car"] {
            let resp = client
                .get(format!("{base}/ipfs/{cid}?format={format}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), want);
            assert_eq!(header(&resp, "retry-after").is_some(), want != 500);
            let text = resp.text().await.unwrap();
            assert!(!text.contains("secret"), "{text}");
        }
    }
}

#[tokio::test]
async fn car_headers_and_dag_scope_all() {
    let (base, root, _) = serve_fixture(MIXED).await;
    let (resp, got) = get_car(&format!("{base}/ipfs/{root}?format=car"), None).await;
    assert_eq!(
        header(&resp, "content-type").unwrap(),
        "application/vnd.ipld.car; version=1; order=dfs; dups=n"
    );
    assert!(header(&resp, "content-length").is_none());
    assert_eq!(header(&resp, "accept-ranges").unwrap(), "none");
    assert_eq!(header(&resp, "x-content-type-options").unwrap(), "nosniff");
    assert_eq!(
        header(&resp, "content-disposition").unwrap(),
        format!("attachment; filename=\"{root}.car\"")
    );
    assert_eq!(
        header(&resp, "cache-control").unwrap(),
        "public, max-age=29030400, immutable"
    );
    assert!(
        header(&resp, "etag")
            .unwrap()
            .starts_with(&format!("\"{root}.car.all."))
    );
    let subdir = "bafybeicnmple4ehlz3ostv2sbojz3zhh5q7tz5r2qkfdpqfilgggeen7xm";
    let mut want = cids(&[&root.to_string(), subdir, ASCII, HELLO, MULTIBLOCK]);
    want.extend(cids(&MULTIBLOCK_LEAVES));
    assert_eq!(got, want);

    // Accept instead of format: Content-Location carries the format
    let (resp, got2) = get_car(
        &format!("{base}/ipfs/{root}"),
        Some("application/vnd.ipld.car"),
    )
    .await;
    assert_eq!(got2, want);
    assert_eq!(
        header(&resp, "content-location").unwrap(),
        format!("/ipfs/{root}?format=car")
    );
    // order=unk is answered with an explicit order
    let (resp, _) = get_car(
        &format!("{base}/ipfs/{root}"),
        Some("application/vnd.ipld.car; version=1; order=unk"),
    )
    .await;
    assert!(header(&resp, "content-type").unwrap().contains("order=dfs"));
}

#[tokio::test]
async fn car_pathing_and_scopes_match_conformance() {
    let (base, root, _) = serve_fixture(MIXED).await;
    let subdir = "bafybeicnmple4ehlz3ostv2sbojz3zhh5q7tz5r2qkfdpqfilgggeen7xm";
    let r = root.to_string();
    let leaves = cids(&MULTIBLOCK_LEAVES);
    let with_leaves = |head: &[&str]| {
        let mut v = cids(head);
        v.extend(leaves.iter().copied());
        v
    };
    let cases: Vec<(String, Vec<Cid>)> = vec![
        (
            "/subdir/ascii.txt?format=car&dag-scope=entity".to_string(),
            cids(&[&r, subdir, ASCII]),
        ),
        (
            "/subdir/multiblock.txt?format=car&dag-scope=entity".to_string(),
            with_leaves(&[&r, subdir, MULTIBLOCK]),
        ),
        (
            "/subdir?format=car&dag-scope=all".to_string(),
            with_leaves(&[&r, subdir, ASCII, HELLO, MULTIBLOCK]),
        ),
        (
            "/subdir/multiblock.txt?format=car&dag-scope=all".to_string(),
            with_leaves(&[&r, subdir, MULTIBLOCK]),
        ),
        (
            "/subdir/multiblock.txt?format=car&dag-scope=block".to_string(),
            cids(&[&r, subdir, MULTIBLOCK]),
        ),
        (
            "/subdir?format=car&dag-scope=block".to_string(),
            cids(&[&r, subdir]),
        ),
        (
            "/subdir?format=car&dag-scope=entity".to_string(),
            cids(&[&r, subdir]),
        ),
        ("?format=car&dag-scope=entity".to_string(), cids(&[&r])),
        (
            "/subdir/multiblock.txt?format=car&entity-bytes=0:*".to_string(),
            with_leaves(&[&r, subdir, MULTIBLOCK]),
        ),
    ];
    for (suffix, want) in cases {
        let (resp, got) = get_car(&format!("{base}/ipfs/{root}{suffix}"), None).await;
        assert_eq!(got, want, "{suffix}");
        if suffix.starts_with("/subdir/multiblock.txt") {
            assert_eq!(
                header(&resp, "content-disposition").unwrap(),
                format!("attachment; filename=\"{MULTIBLOCK}.car\"")
            );
            assert_eq!(
                header(&resp, "x-ipfs-roots").unwrap(),
                format!("{r},{subdir},{MULTIBLOCK}")
            );
        }
    }
    // entity-bytes on the file itself (conformance TestTrustlessCarEntityBytes)
    let ranges: [(&str, &[usize]); 8] = [
        ("512:*", &[2, 3, 4]),
        ("512:1023", &[2, 3]),
        ("512:-256", &[2, 3]),
        ("-5:*", &[3, 4]),
        ("-9999:*", &[0, 1, 2, 3, 4]),
        ("-9999:-3", &[0, 1, 2, 3]),
        ("0:0", &[0]),
        ("5000:*", &[]),
    ];
    for (range, idx) in ranges {
        let (_, got) = get_car(
            &format!("{base}/ipfs/{MULTIBLOCK}?format=car&dag-scope=entity&entity-bytes={range}"),
            None,
        )
        .await;
        let mut want = cids(&[MULTIBLOCK]);
        want.extend(idx.iter().map(|i| leaves[*i]));
        assert_eq!(got, want, "{range}");
    }
}

#[tokio::test]
async fn car_through_dag_cbor_and_hamt() {
    let (base, root, backend) = serve_fixture(CBOR_LINKS).await;
    let document = "bafyreidy4q6mmetut5jzc54ambsfnatbyoujmwbfzyyolqw24majazwgha";
    let (_, got) = get_car(
        &format!("{base}/ipfs/{root}/document?format=car&dag-scope=entity"),
        None,
    )
    .await;
    assert_eq!(got, cids(&[&root.to_string(), document]));
    let (_, got) = get_car(
        &format!("{base}/ipfs/{document}/files/single?format=car"),
        None,
    )
    .await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].to_string(), document);
    let doc_links = hydrant_unixfs::links(&got[0], &backend.blocks[&got[0]]).unwrap();
    assert!(doc_links.contains(&got[1]));
    // all scope follows the links inside DAG-CBOR
    let (_, got) = get_car(&format!("{base}/ipfs/{document}?format=car"), None).await;
    assert_eq!(got.len(), 1 + 1 + 1 + 5);

    let (base, root, backend) = serve_fixture(HAMT).await;
    // every shard of the HAMT, depth-first: links named by the 2-hex-digit bucket alone
    fn shards_under(cid: Cid, blocks: &HashMap<Cid, Bytes>, out: &mut Vec<Cid>) {
        let node = PbNode::decode(&cid, &blocks[&cid]).unwrap();
        for link in node.links {
            if link.name.as_deref().map(str::len) == Some(2) {
                out.push(link.cid);
                shards_under(link.cid, blocks, out);
            }
        }
    }
    let mut shards = Vec::new();
    shards_under(root, &backend.blocks, &mut shards);
    assert!(!shards.is_empty());
    let (_, got) = get_car(
        &format!("{base}/ipfs/{root}?format=car&dag-scope=entity"),
        None,
    )
    .await;
    let want = [vec![root], shards.clone()].concat();
    let diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "entity HAMT: got {} want {} first diff {diff:?}",
        got.len(),
        want.len()
    );
    let (_, got2) = get_car(
        &format!("{base}/ipfs/{root}?format=car&entity-bytes=0:*"),
        None,
    )
    .await;
    assert!(got2 == got, "entity-bytes on a HAMT differs");
    // every entry of the HAMT is found by name through murmur3 bucket lookup
    let mut found = 0;
    let mut parents: HashMap<Cid, Cid> = HashMap::new();
    for shard in std::iter::once(&root).chain(&shards) {
        let sub = PbNode::decode(shard, &backend.blocks[shard]).unwrap();
        for link in sub.links {
            let name = link.name.as_deref().unwrap();
            if name.len() == 2 {
                parents.insert(link.cid, *shard);
                continue;
            }
            let mut chain = vec![*shard];
            while let Some(p) = parents.get(chain.last().unwrap()) {
                chain.push(*p);
            }
            chain.reverse();
            chain.push(link.cid);
            let (_, got) = get_car(
                &format!(
                    "{base}/ipfs/{root}/{}?format=car&dag-scope=block",
                    &name[2..]
                ),
                None,
            )
            .await;
            assert!(
                got == chain,
                "{name}: {} blocks, want {}",
                got.len(),
                chain.len()
            );
            found += 1;
        }
    }
    assert!(found > 100, "{found}");
    // conformance: /685.txt, all scope: root, shard, file, leaves
    let (_, got) = get_car(&format!("{base}/ipfs/{root}/685.txt?format=car"), None).await;
    assert_eq!(got[0], root);
    let file_at = got
        .iter()
        .position(|c| c.to_string() == MULTIBLOCK)
        .unwrap();
    assert!(file_at >= 2 && got[1..file_at].iter().all(|c| shards.contains(c)));
    assert!(got[file_at + 1..] == cids(&MULTIBLOCK_LEAVES)[..]);
}

#[tokio::test]
async fn dups_y_and_n() {
    let (base, root, _) = serve_fixture(DUP_FILES).await;
    let r = root.to_string();
    let (resp, got) = get_car(
        &format!("{base}/ipfs/{root}"),
        Some("application/vnd.ipld.car; version=1; order=dfs; dups=y"),
    )
    .await;
    assert!(
        header(&resp, "content-type")
            .unwrap()
            .ends_with("order=dfs; dups=y")
    );
    let mut want = cids(&[&r, ASCII, ASCII, HELLO, MULTIBLOCK]);
    want.extend(cids(&MULTIBLOCK_LEAVES));
    assert_eq!(got, want);
    // format=car plus a specific Accept: the Accept parameters are honoured
    let (_, got_fmt) = get_car(
        &format!("{base}/ipfs/{root}?format=car"),
        Some("application/vnd.ipld.car; version=1; order=dfs; dups=y"),
    )
    .await;
    assert_eq!(got_fmt, want);
    let (resp, got) = get_car(
        &format!("{base}/ipfs/{root}"),
        Some("application/vnd.ipld.car; version=1; order=dfs; dups=n"),
    )
    .await;
    assert!(header(&resp, "content-type").unwrap().ends_with("dups=n"));
    let mut want = cids(&[&r, ASCII, HELLO, MULTIBLOCK]);
    want.extend(cids(&MULTIBLOCK_LEAVES));
    assert_eq!(got, want);
    // car-dups in the query wins over Accept
    let (_, got_q) = get_car(
        &format!("{base}/ipfs/{root}?format=car&car-dups=n"),
        Some("application/vnd.ipld.car; dups=y"),
    )
    .await;
    assert_eq!(got_q, want);
}

/// An identity CID holds its bytes in the CID: a client that writes invalid DAG-CBOR into one
/// gets 400, not a server error (issue 14, item 2).
#[tokio::test]
async fn an_invalid_identity_block_on_the_path_is_the_clients_fault() {
    let (base, _, _) = serve_fixture(TWO_SINGLE).await;
    for format in ["car", "raw"] {
        let resp = reqwest::get(format!(
            "{base}/ipfs/bafyqacn3p777777777776/a/b?format={format}"
        ))
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "format={format}");
    }
}

#[tokio::test]
async fn identity_probe() {
    let (base, _, _) = serve_fixture(TWO_SINGLE).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{base}/ipfs/bafkqaaa?format=raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client
        .head(format!("{base}/ipfs/bafkqaaa?format=raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = client
        .get(format!("{base}/ipfs/bafkqaaa?format=car"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (roots, blocks) = parse_car(&body).unwrap();
    assert_eq!(roots, cids(&["bafkqaaa"]));
    assert!(blocks.is_empty());
    let (resp, got) = get_car(
        &format!("{base}/ipfs/bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa"),
        Some("application/vnd.ipld.car; dups=y"),
    )
    .await;
    assert!(got.is_empty());
    assert!(header(&resp, "content-type").unwrap().contains("dups=y"));
}

#[tokio::test]
async fn missing_block_mid_stream_truncates_the_response() {
    let (base, root, _) = serve_fixture(MISSING).await;
    let first = "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF";
    let last = "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV";
    // Ranges that avoid the missing middle block succeed (conformance).
    let (_, got) = get_car(
        &format!("{base}/ipfs/{root}?format=car&entity-bytes=0:1000"),
        None,
    )
    .await;
    assert_eq!(got, cids(&[&root.to_string(), first]));
    let (_, got) = get_car(
        &format!("{base}/ipfs/{root}?format=car&entity-bytes=2200:*"),
        None,
    )
    .await;
    assert_eq!(got, cids(&[&root.to_string(), last]));

    // The whole file: 200, then the body ends with an error after the blocks before the gap.
    let mut resp = reqwest::Client::new()
        .get(format!("{base}/ipfs/{root}?format=car"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = Vec::new();
    let mut failed = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a truncated CAR must not end like a complete one");
    let (_, blocks) = parse_car(&received).unwrap();
    let got: Vec<Cid> = blocks.into_iter().map(|b| b.0).collect();
    assert_eq!(got, cids(&[&root.to_string(), first]));
}

/// A file of `n` raw leaves under one dag-pb node, in a MemBackend.
fn big_file(n: usize) -> (Cid, Vec<Cid>, MemBackend) {
    file_of(n, 0)
}

/// A UnixFS file of `n` raw leaves, each padded to at least `leaf_size` bytes.
fn file_of(n: usize, leaf_size: usize) -> (Cid, Vec<Cid>, MemBackend) {
    let mut blocks = HashMap::new();
    let mut leaves = Vec::new();
    for i in 0..n {
        let mut data = format!("leaf {i}").into_bytes();
        data.resize(data.len().max(leaf_size), b'.');
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
        blocks.insert(cid, Bytes::from(data));
        leaves.push(cid);
    }
    let mut ufs = UnixFsData::new(DataType::File);
    ufs.blocksizes = leaves.iter().map(|c| blocks[c].len() as u64).collect();
    ufs.filesize = ufs.blocksizes.iter().sum();
    let node = PbNode {
        links: leaves
            .iter()
            .map(|c| PbLink {
                cid: *c,
                name: None,
                tsize: None,
            })
            .collect(),
        data: Some(Bytes::from(ufs.encode())),
    };
    let bytes = node.encode();
    let root = Cid::new_v1(0x70, Code::Sha2_256.digest(&bytes));
    blocks.insert(root, Bytes::from(bytes));
    (
        root,
        leaves,
        MemBackend {
            blocks,
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn car_stream_reads_a_bounded_window() {
    let (root, leaves, backend) = big_file(2000);
    let backend = Arc::new(backend);
    let options = CarStreamOptions {
        prefetch_window: 7,
        ..Default::default()
    };
    let stream = car_stream(
        backend.clone(),
        CarRequest::new(root, DagScope::All, false),
        options,
    );
    let chunks: Vec<Bytes> = stream.map(|r| r.unwrap()).collect().await;
    assert_eq!(chunks.len(), 1 + 1 + 2000, "header plus one item per block");
    let (roots, blocks) = parse_car(&chunks.concat()).unwrap();
    assert_eq!(roots, vec![root]);
    let got: Vec<Cid> = blocks.into_iter().map(|b| b.0).collect();
    assert_eq!(got, [vec![root], leaves].concat());
    let batches = backend.batches.lock().unwrap().clone();
    assert!(batches.iter().all(|b| *b <= 7), "{batches:?}");
    assert!(
        batches.len() >= 2000 / 7,
        "windows were used: {}",
        batches.len()
    );

    // Bounded in bytes: 4 leaves' worth of 4 KiB leaves per read once their size is known
    // (the first read, of the root, assumes the largest block and asks for one; then the window
    // doubles but never past what the largest block seen allows).
    let (root, leaves, backend) = file_of(64, 4096);
    let backend = Arc::new(backend);
    let options = CarStreamOptions {
        prefetch_bytes: Some(4 * 4096),
        ..Default::default()
    };
    let stream = car_stream(
        backend.clone(),
        CarRequest::new(root, DagScope::All, false),
        options,
    );
    let chunks: Vec<Bytes> = stream.map(|r| r.unwrap()).collect().await;
    let (_, blocks) = parse_car(&chunks.concat()).unwrap();
    assert_eq!(blocks.len(), 1 + leaves.len());
    let batches = backend.batches.lock().unwrap().clone();
    assert_eq!(batches[0], 1, "{batches:?}");
    assert!(batches[2..].iter().all(|b| *b <= 4), "{batches:?}");
    assert!(
        batches.iter().filter(|b| **b == 4).count() >= 10,
        "leaves still read several at a time: {batches:?}"
    );

    // a missing block ends the stream with an error naming it
    let (root, leaves, mut backend) = big_file(10);
    backend.blocks.remove(&leaves[4]);
    let items: Vec<_> = car_stream(
        Arc::new(backend),
        CarRequest::new(root, DagScope::All, true),
        CarStreamOptions::default(),
    )
    .collect()
    .await;
    assert_eq!(items.len(), 1 + 1 + 4 + 1);
    assert!(matches!(
        items.last(),
        Some(Err(CarStreamError::MissingBlock { cid })) if *cid == leaves[4]
    ));
}
