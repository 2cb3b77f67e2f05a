//! Fuzz target: whole HTTP requests through the gateway's router (`hydrant_gateway::router`),
//! the request path the gateway listener serves: method, URI (path and query) and headers,
//! over an in-memory blockstore holding a raw block, a DAG-CBOR block linking it, and a UnixFS
//! directory with a two-block file.
//!
//! Input layout: lossy UTF-8 split on `\n`: `method \n target \n header lines...`, each header
//! `name: value`. A request the `http` crate cannot build (hyper would answer it 400 before any
//! routing) is skipped. Checks beyond "no panic": no answer is 5xx but 501 (the store never
//! fails, so every error is the client's, hardening round two item 2; 501 answers what the
//! gateway does not serve); a HEAD answer has no body.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::{Blockstore, BlockstoreError};
use hydrant_gateway::{GatewayConfig, router};
use hydrant_unixfs::{DataType, PbLink, PbNode, UnixFsData};
use libfuzzer_sys::fuzz_target;
use multihash_codetable::{Code, MultihashDigest};
use tower::ServiceExt;

struct Memory(HashMap<Cid, Bytes>);

#[async_trait]
impl Blockstore for Memory {
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(self.0.contains_key(cid))
    }

    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError> {
        Ok(self.0.get(cid).map(|b| b.len() as u32))
    }

    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        Ok(self.0.get(cid).cloned())
    }
}

fn put(blocks: &mut HashMap<Cid, Bytes>, codec: u64, data: Vec<u8>) -> Cid {
    let cid = Cid::new_v1(codec, Code::Sha2_256.digest(&data));
    blocks.insert(cid, Bytes::from(data));
    cid
}

fn link(cid: Cid, name: Option<&str>) -> PbLink {
    PbLink {
        cid,
        name: name.map(str::to_owned),
        tsize: None,
    }
}

static APP: LazyLock<(tokio::runtime::Runtime, axum::Router)> = LazyLock::new(|| {
    let mut blocks = HashMap::new();
    let hello = put(&mut blocks, 0x55, b"hello".to_vec());
    let world = put(&mut blocks, 0x55, b" world".to_vec());
    // DAG-CBOR: {"a": CID(hello)}.
    let mut cbor = vec![0xa1, 0x61, b'a', 0xd8, 0x2a, 0x58, 37, 0x00];
    cbor.extend(hello.to_bytes());
    put(&mut blocks, 0x71, cbor);
    let mut file = UnixFsData::new(DataType::File);
    file.blocksizes = vec![5, 6];
    file.filesize = 11;
    let file = PbNode {
        links: vec![link(hello, None), link(world, None)],
        data: Some(Bytes::from(file.encode())),
    };
    let file = put(&mut blocks, 0x70, file.encode());
    let dir = PbNode {
        links: vec![link(file, Some("a.txt")), link(hello, Some("b"))],
        data: Some(Bytes::from(UnixFsData::new(DataType::Directory).encode())),
    };
    put(&mut blocks, 0x70, dir.encode());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (runtime, router(Arc::new(Memory(blocks)), GatewayConfig::default()))
});

fuzz_target!(|data: &[u8]| {
    let (runtime, app) = &*APP;
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default();
    let target = lines.next().unwrap_or_default();
    let mut request = http::Request::builder().method(method).uri(target);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    let Ok(request) = request.body(axum::body::Body::empty()) else {
        return;
    };
    let head = request.method() == http::Method::HEAD;
    runtime.block_on(async {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        // 501 is the gateway's answer to what it does not serve (`/ipns/`, deserialized
        // paths): chosen by the client, logged at debug.
        assert!(
            !status.is_server_error() || status == http::StatusCode::NOT_IMPLEMENTED,
            "{status} for {text:?}"
        );
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        if head {
            assert!(body.is_empty(), "HEAD answered with a body");
        }
    });
});
