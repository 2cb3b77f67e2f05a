//! The read side of the Kubo RPC API (`/api/v0/cat`, `ls`, `get`, `block/get`, `block/stat`,
//! `dag/get`, `dag/export`) on a real daemon: a UnixFS tree built with the importer (chunked
//! files with dag-pb leaves, an empty file, a symlink, a subdirectory, a HAMT directory,
//! UnixFS 1.5 metadata), a dag-cbor node linking it and a raw block go in through
//! `PUT /api/v1/cars`, and every command's answer is checked byte for byte against the input.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read as _;

use bytes::Bytes;
use cid::Cid;
use hydrant_car::{CarDecoder, Event, Limits, encode_section, encode_v1_header, verify_block};
use hydrant_unixfs::importer::{
    DirectoryBuilder, FileImporter, ImportProfile, Imported, Metadata, symlink_block,
};
use hydrant_unixfs::{DataType, PbNode, UnixFsData};
use ipld_core::ipld::Ipld;

/// Bytes of `big.bin` (five 1000-byte chunks).
const BIG: usize = 5000;
const BIG_MTIME: i64 = 1_700_000_000;
const HAMT_ENTRIES: usize = 40;

struct Fixture {
    blocks: HashMap<Cid, Bytes>,
    root: Cid,
    hello: Cid,
    big: Cid,
    big_bytes: Vec<u8>,
    sub: Cid,
    hamt: Cid,
    cbor: Cid,
    raw: Cid,
    /// A 3000-byte file whose second chunk is not in the store.
    partial: Cid,
    partial_blocks: Vec<(Cid, Bytes)>,
}

fn profile() -> ImportProfile {
    let mut p = ImportProfile::unixfs_v0_2015();
    p.chunk_size = 1000;
    p
}

fn keep(blocks: &mut HashMap<Cid, Bytes>, imported: Imported) -> (Cid, u64) {
    for b in imported.blocks {
        blocks.insert(b.cid, b.data);
    }
    (imported.cid, imported.size)
}

fn file(blocks: &mut HashMap<Cid, Bytes>, data: &[u8], metadata: Metadata) -> (Cid, u64) {
    let mut f = FileImporter::new(&profile(), metadata).unwrap();
    for b in f.push(data) {
        blocks.insert(b.cid, b.data);
    }
    keep(blocks, f.finish())
}

fn digest_cid(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, hydrant_blocks::digest(0x12, 32, data).unwrap())
}

fn build() -> Fixture {
    let mut blocks = HashMap::new();
    let hello = file(&mut blocks, b"hello world\n", Metadata::default());
    let big_bytes: Vec<u8> = (0..BIG).map(|i| (i * 7 % 251) as u8).collect();
    let big = file(
        &mut blocks,
        &big_bytes,
        Metadata {
            mode: Some(0o600),
            mtime: Some((BIG_MTIME, 0)),
        },
    );
    let empty = file(&mut blocks, b"", Metadata::default());
    let link = keep(
        &mut blocks,
        symlink_block(&profile(), "hello.txt", Metadata::default()).unwrap(),
    );
    let nested = file(&mut blocks, b"nested", Metadata::default());
    let mut sub = DirectoryBuilder::new(&profile(), Metadata::default()).unwrap();
    sub.add("nested.txt", nested.0, nested.1).unwrap();
    let sub = keep(&mut blocks, sub.finish().unwrap());

    let mut hamt_profile = profile();
    hamt_profile.hamt_threshold = Some(100);
    hamt_profile.hamt_fanout = 16;
    let mut hamt = DirectoryBuilder::new(&hamt_profile, Metadata::default()).unwrap();
    for i in 0..HAMT_ENTRIES {
        let f = file(
            &mut blocks,
            format!("entry {i}").as_bytes(),
            Metadata::default(),
        );
        hamt.add(&format!("f{i:03}"), f.0, f.1).unwrap();
    }
    let hamt = keep(&mut blocks, hamt.finish().unwrap());

    let mut root = DirectoryBuilder::new(&profile(), Metadata::default()).unwrap();
    root.add("hello.txt", hello.0, hello.1).unwrap();
    root.add("big.bin", big.0, big.1).unwrap();
    root.add("empty.txt", empty.0, empty.1).unwrap();
    root.add("link", link.0, link.1).unwrap();
    root.add("sub", sub.0, sub.1).unwrap();
    root.add("hamt", hamt.0, hamt.1).unwrap();
    let root = keep(&mut blocks, root.finish().unwrap());

    let raw_data = Bytes::from_static(b"raw block bytes");
    let raw = digest_cid(0x55, &raw_data);
    blocks.insert(raw, raw_data);
    let node = ipld_core::ipld!({
        "name": "tree",
        "tree": Ipld::Link(root.0),
        "n": 5,
        "raw": Ipld::Link(raw),
        "list": [1, Ipld::Link(hello.0)],
        "bytes": Ipld::Bytes(vec![1, 2, 3]),
    });
    let cbor_data = Bytes::from(serde_ipld_dagcbor::to_vec(&node).unwrap());
    let cbor = digest_cid(0x71, &cbor_data);
    blocks.insert(cbor, cbor_data);

    let mut partial_map = HashMap::new();
    let partial_bytes: Vec<u8> = (0..3000).map(|i| (i % 13) as u8).collect();
    let mut f = FileImporter::new(&profile(), Metadata::default()).unwrap();
    let mut order = Vec::new();
    for b in f.push(&partial_bytes) {
        order.push(b.cid);
        partial_map.insert(b.cid, b.data);
    }
    let imported = f.finish();
    for b in &imported.blocks {
        order.push(b.cid);
    }
    let partial = keep(&mut partial_map, imported).0;
    assert_eq!(order.len(), 4, "three leaves and a root");
    let missing = order[1];
    let partial_blocks = order
        .iter()
        .filter(|c| **c != missing)
        .map(|c| (*c, partial_map[c].clone()))
        .collect();

    Fixture {
        blocks,
        root: root.0,
        hello: hello.0,
        big: big.0,
        big_bytes,
        sub: sub.0,
        hamt: hamt.0,
        cbor,
        raw,
        partial,
        partial_blocks,
    }
}

fn car(roots: &[Cid], blocks: impl IntoIterator<Item = (Cid, Bytes)>) -> Vec<u8> {
    let mut out = encode_v1_header(roots);
    for (cid, data) in blocks {
        encode_section(&cid, &data, &mut out);
    }
    out
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Result<Bytes, reqwest::Error>,
}

impl Answer {
    fn bytes(&self) -> &Bytes {
        self.body.as_ref().expect("a complete body")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.bytes())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(self.bytes())))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// A Kubo error: status, `Code`, and the message.
    fn kubo_error(&self, status: u16, code: u64) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let e = self.json();
        assert_eq!(e["Code"], code, "{e}");
        assert_eq!(e["Type"], "error", "{e}");
        e["Message"].as_str().unwrap().to_owned()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// True when the answer to `command` breaks off: the connection closes before the head
    /// or the body is complete (hyper may not have flushed the head when the body fails).
    async fn breaks_off(&self, command: &str, arg: &str) -> bool {
        let response = self
            .http
            .post(format!("{}/api/v0/{command}?arg={arg}", self.base))
            .send()
            .await;
        match response {
            Err(_) => true,
            Ok(r) => {
                assert_eq!(r.status(), 200);
                r.bytes().await.is_err()
            }
        }
    }

    async fn post(&self, command: &str, query: &[(&str, &str)]) -> Answer {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let response = self
            .http
            .post(format!("{}/api/v0/{command}?{query}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.bytes().await;
        Answer {
            status,
            content_type,
            body,
        }
    }
}

fn unixfs(data: &[u8], cid: &Cid) -> UnixFsData {
    let node = PbNode::decode(cid, data).unwrap();
    UnixFsData::decode(cid, node.data.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_read_commands_answer_as_kubo() {
    let fx = build();
    assert_eq!(
        unixfs(&fx.blocks[&fx.hamt], &fx.hamt).data_type,
        DataType::HamtShard,
        "the fixture has a HAMT directory"
    );
    let dir = tempfile::tempdir().unwrap();
    let (info, stop, task) = common::start_daemon(&dir.path().join("repo"), 0, |_| {}).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: info.api_url.clone(),
    };
    let put = |body: Vec<u8>, pin: &'static str| {
        api.http
            .put(format!("{}/api/v1/cars?pin={pin}", info.api_url))
            .body(body)
            .send()
    };
    let response = put(
        car(&[fx.cbor], fx.blocks.iter().map(|(c, b)| (*c, b.clone()))),
        "true",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = put(car(&[fx.partial], fx.partial_blocks.clone()), "false")
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let root = fx.root.to_string();
    let absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

    // --- cat
    let a = api
        .post("cat", &[("arg", &format!("{root}/hello.txt"))])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type.as_deref(), Some("text/plain"));
    assert_eq!(a.bytes().as_ref(), b"hello world\n");
    let a = api
        .post("cat", &[("arg", &format!("/ipfs/{root}/big.bin"))])
        .await;
    assert_eq!(a.bytes().as_ref(), &fx.big_bytes[..]);
    for (offset, length) in [
        (1500, Some(2000)),
        (999, Some(2)),
        (4999, None),
        (0, Some(1)),
    ] {
        let mut query = vec![
            ("arg", format!("{root}/big.bin")),
            ("offset", offset.to_string()),
        ];
        if let Some(l) = length {
            query.push(("length", l.to_string()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = api.post("cat", &query).await;
        let end = length.map_or(BIG, |l| (offset + l).min(BIG));
        assert_eq!(
            a.bytes().as_ref(),
            &fx.big_bytes[offset..end],
            "{offset} {length:?}"
        );
    }
    let a = api
        .post(
            "cat",
            &[("arg", &format!("{root}/big.bin")), ("length", "0")],
        )
        .await;
    assert!(a.bytes().is_empty());
    let a = api
        .post(
            "cat",
            &[("arg", &format!("{root}/big.bin")), ("offset", "9999")],
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.bytes().is_empty());
    // Several paths: one stream, the offset and length over the whole.
    let a = api
        .post(
            "cat",
            &[
                ("arg", &format!("{root}/hello.txt")),
                ("arg", &format!("{root}/sub/nested.txt")),
                ("offset", "6"),
                ("length", "10"),
            ],
        )
        .await;
    assert_eq!(a.text(), "world\nnest");
    let m = api.post("cat", &[("arg", &root)]).await.kubo_error(500, 0);
    assert_eq!(m, "this dag node is a directory");
    let m = api
        .post("cat", &[("arg", &format!("{root}/link"))])
        .await
        .kubo_error(500, 0);
    assert_eq!(m, "operation not supported");
    let m = api
        .post("cat", &[("arg", "notacid")])
        .await
        .kubo_error(400, 1);
    assert!(m.contains("is not a CID"), "{m}");
    let m = api.post("cat", &[]).await.kubo_error(400, 1);
    assert!(m.contains("ipfs-path"), "{m}");
    let m = api.post("cat", &[("arg", absent)]).await.kubo_error(500, 0);
    assert_eq!(
        m,
        format!("block was not found locally (offline): ipld: could not find {absent}")
    );
    let m = api
        .post("cat", &[("arg", &format!("{root}/nothing"))])
        .await
        .kubo_error(500, 0);
    assert!(m.contains("nothing"), "{m}");
    // A block missing after the first bytes: the stream breaks, it does not end cleanly.
    assert!(
        api.breaks_off("cat", &fx.partial.to_string()).await,
        "a cut stream must not read as a complete file"
    );

    // --- ls
    let a = api.post("ls", &[("arg", &root)]).await;
    assert_eq!(a.status, 200);
    let out = a.json();
    let objects = out["Objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["Hash"], root.as_str());
    let links = objects[0]["Links"].as_array().unwrap();
    let summary: Vec<(String, u64, u64, String)> = links
        .iter()
        .map(|l| {
            (
                l["Name"].as_str().unwrap().to_owned(),
                l["Type"].as_u64().unwrap(),
                l["Size"].as_u64().unwrap(),
                l["Target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, u64, String)> = [
        ("big.bin", 2, BIG as u64, ""),
        ("empty.txt", 2, 0, ""),
        ("hamt", 1, 0, ""),
        ("hello.txt", 2, 12, ""),
        ("link", 4, 9, "hello.txt"),
        ("sub", 1, 0, ""),
    ]
    .iter()
    .map(|(n, t, s, x)| (n.to_string(), *t, *s, x.to_string()))
    .collect();
    assert_eq!(summary, expected);
    let by_name: BTreeMap<&str, &serde_json::Value> = links
        .iter()
        .map(|l| (l["Name"].as_str().unwrap(), l))
        .collect();
    assert_eq!(by_name["hello.txt"]["Hash"], fx.hello.to_string().as_str());
    assert_eq!(by_name["sub"]["Hash"], fx.sub.to_string().as_str());
    assert_eq!(by_name["big.bin"]["Mode"], 0o600);
    assert_eq!(by_name["big.bin"]["ModTime"], "2023-11-14T22:13:20Z");
    assert_eq!(by_name["hello.txt"]["Mode"], 0);
    assert_eq!(by_name["hello.txt"]["ModTime"], "0001-01-01T00:00:00Z");
    // A HAMT directory: every entry, sorted.
    let a = api
        .post("ls", &[("arg", &format!("/ipfs/{root}/hamt"))])
        .await;
    let out = a.json();
    assert_eq!(
        out["Objects"][0]["Hash"],
        format!("/ipfs/{root}/hamt").as_str()
    );
    let names: Vec<&str> = out["Objects"][0]["Links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["Name"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..HAMT_ENTRIES).map(|i| format!("f{i:03}")).collect();
    assert_eq!(names, want);
    // A chunked file: its chunks, unnamed; a one-block file: no links.
    let a = api.post("ls", &[("arg", &fx.big.to_string())]).await;
    let chunks = a.json()["Objects"][0]["Links"].as_array().unwrap().clone();
    assert_eq!(chunks.len(), 5);
    for c in &chunks {
        assert_eq!(c["Name"], "");
        assert_eq!(c["Type"], 2);
        assert_eq!(c["Size"], 1000);
    }
    let a = api.post("ls", &[("arg", &fx.hello.to_string())]).await;
    assert_eq!(
        a.json(),
        serde_json::json!({"Objects": [{"Hash": fx.hello.to_string(), "Links": []}]})
    );
    // Several paths, unresolved children.
    let a = api
        .post(
            "ls",
            &[
                ("arg", &format!("{root}/sub")),
                ("arg", &root),
                ("resolve-type", "false"),
                ("size", "false"),
            ],
        )
        .await;
    let out = a.json();
    assert_eq!(out["Objects"].as_array().unwrap().len(), 2);
    let nested = &out["Objects"][0]["Links"][0];
    assert_eq!(nested["Name"], "nested.txt");
    assert_eq!(nested["Type"], 0);
    assert_eq!(nested["Size"], 0);
    // Streamed: one object per entry per line.
    let a = api.post("ls", &[("arg", &root), ("stream", "true")]).await;
    let lines: Vec<serde_json::Value> = a
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["Objects"][0]["Hash"], root.as_str());
    assert_eq!(lines[0]["Objects"][0]["Links"][0]["Name"], "big.bin");
    let m = api.post("ls", &[("arg", absent)]).await.kubo_error(500, 0);
    assert!(m.contains("could not find"), "{m}");

    // --- get
    let a = api.post("get", &[("arg", &root)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type.as_deref(), Some("application/x-tar"));
    assert_eq!(a.bytes().len() % 512, 0);
    let mut archive = tar::Archive::new(a.bytes().as_ref());
    let mut seen = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let what = match header.entry_type() {
            tar::EntryType::Directory => "dir".to_owned(),
            tar::EntryType::Regular => format!("file {}", content.len()),
            tar::EntryType::Symlink => format!(
                "symlink {}",
                String::from_utf8(header.link_name_bytes().unwrap().into_owned()).unwrap()
            ),
            other => panic!("{path}: unexpected {other:?}"),
        };
        if path == format!("{root}/big.bin") {
            assert_eq!(content, fx.big_bytes);
            assert_eq!(header.mode().unwrap(), 0o600);
            assert_eq!(header.mtime().unwrap(), BIG_MTIME as u64);
        }
        if path == format!("{root}/hello.txt") {
            assert_eq!(content, b"hello world\n");
            assert_eq!(header.mode().unwrap(), 0o644);
        }
        if path == format!("{root}/hamt/f007") {
            assert_eq!(content, b"entry 7");
        }
        if path == root {
            assert_eq!(header.mode().unwrap(), 0o755);
        }
        assert!(seen.insert(path.clone(), what).is_none(), "{path} twice");
    }
    let mut want: BTreeMap<String, String> = [
        ("".to_owned(), "dir".to_owned()),
        ("/big.bin".into(), format!("file {BIG}")),
        ("/empty.txt".into(), "file 0".into()),
        ("/hamt".into(), "dir".into()),
        ("/hello.txt".into(), "file 12".into()),
        ("/link".into(), "symlink hello.txt".into()),
        ("/sub".into(), "dir".into()),
        ("/sub/nested.txt".into(), "file 6".into()),
    ]
    .into_iter()
    .map(|(p, w)| (format!("{root}{p}"), w))
    .collect();
    for i in 0..HAMT_ENTRIES {
        want.insert(
            format!("{root}/hamt/f{i:03}"),
            format!("file {}", format!("entry {i}").len()),
        );
    }
    assert_eq!(seen, want);
    // The top entry is named by the path's last component; a file alone.
    let a = api
        .post("get", &[("arg", &format!("/ipfs/{root}/sub"))])
        .await;
    let names: Vec<String> = tar::Archive::new(a.bytes().as_ref())
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(names, ["sub", "sub/nested.txt"]);
    let a = api
        .post("get", &[("arg", &format!("{root}/hello.txt"))])
        .await;
    let mut archive = tar::Archive::new(a.bytes().as_ref());
    let mut entries = archive.entries().unwrap();
    let mut only = entries.next().unwrap().unwrap();
    assert_eq!(&*only.path_bytes(), b"hello.txt");
    let mut content = String::new();
    only.read_to_string(&mut content).unwrap();
    assert_eq!(content, "hello world\n");
    drop(only);
    assert!(entries.next().is_none());
    let m = api
        .post("get", &[("arg", &root), ("compress", "true")])
        .await
        .kubo_error(400, 1);
    assert!(m.contains("compress"), "{m}");
    let m = api.post("get", &[("arg", absent)]).await.kubo_error(500, 0);
    assert!(m.contains(absent), "{m}");

    // --- block/get, block/stat
    let a = api
        .post("block/get", &[("arg", &fx.hello.to_string())])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.bytes(), &fx.blocks[&fx.hello]);
    let a = api.post("block/get", &[("arg", &fx.raw.to_string())]).await;
    assert_eq!(a.bytes().as_ref(), b"raw block bytes");
    let a = api
        .post("block/stat", &[("arg", &fx.hello.to_string())])
        .await;
    assert_eq!(
        a.json(),
        serde_json::json!({"Key": fx.hello.to_string(), "Size": fx.blocks[&fx.hello].len()})
    );
    assert!(fx.hello.to_string().starts_with("Qm"), "CIDv0 stays v0");
    let a = api
        .post("block/stat", &[("arg", &format!("/ipfs/{root}/sub"))])
        .await;
    assert_eq!(a.json()["Key"], fx.sub.to_string().as_str());
    for command in ["block/get", "block/stat"] {
        let m = api
            .post(command, &[("arg", absent)])
            .await
            .kubo_error(500, 0);
        assert_eq!(
            m,
            format!("block was not found locally (offline): ipld: could not find {absent}")
        );
    }
    let m = api
        .post("block/get", &[("arg", "xyz")])
        .await
        .kubo_error(400, 1);
    assert!(m.contains("not a CID"), "{m}");

    // --- dag/export: every block of the DAG once, each verified, the root first.
    let a = api
        .post("dag/export", &[("arg", &fx.cbor.to_string())])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type.as_deref(), Some("application/vnd.ipld.car"));
    let mut decoder = CarDecoder::new(Limits::default());
    decoder.push(a.bytes());
    let mut roots = Vec::new();
    let mut got = Vec::new();
    while let Some(event) = decoder.next_event().unwrap() {
        match event {
            Event::Header(h) => roots = h.roots,
            Event::Section(s) => {
                verify_block(&s.cid, &s.data).unwrap();
                assert_eq!(s.data, fx.blocks[&s.cid]);
                got.push(s.cid);
            }
        }
    }
    assert_eq!(roots, vec![fx.cbor]);
    assert_eq!(got[0], fx.cbor);
    let unique: HashSet<Cid> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "each block once");
    let all: HashSet<Cid> = fx.blocks.keys().copied().collect();
    assert_eq!(unique, all);
    let m = api
        .post("dag/export", &[("arg", absent)])
        .await
        .kubo_error(500, 0);
    assert!(m.contains("could not find"), "{m}");
    assert!(
        api.breaks_off("dag/export", &fx.partial.to_string()).await,
        "a missing block cuts the CAR"
    );
    assert!(
        api.breaks_off("get", &fx.partial.to_string()).await,
        "a missing block cuts the tar"
    );

    // --- dag/get
    let a = api.post("dag/get", &[("arg", &fx.cbor.to_string())]).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.text(),
        format!(
            r#"{{"n":5,"raw":{{"/":"{raw}"}},"list":[1,{{"/":"{hello}"}}],"name":"tree","tree":{{"/":"{root}"}},"bytes":{{"/":{{"bytes":"AQID"}}}}}}"#,
            raw = fx.raw,
            hello = fx.hello,
        )
    );
    // A dag-pb node in its data model.
    let a = api.post("dag/get", &[("arg", &root)]).await;
    let value = a.json();
    let node = PbNode::decode(&fx.root, &fx.blocks[&fx.root]).unwrap();
    let links = value["Links"].as_array().unwrap();
    assert_eq!(links.len(), node.links.len());
    for (l, want) in links.iter().zip(&node.links) {
        assert_eq!(l["Hash"]["/"], want.cid.to_string().as_str());
        assert_eq!(l["Name"], want.name.as_deref().unwrap());
        assert_eq!(l["Tsize"], want.tsize.unwrap());
    }
    let data = value["Data"]["/"]["bytes"].as_str().unwrap();
    let encoded = cid::multibase::encode(cid::multibase::Base::Base64, node.data.unwrap());
    assert_eq!(data, &encoded[1..]);
    assert!(!a.text().ends_with('\n'));
    // Paths: through the cbor node's links, UnixFS names, and into a node's fields.
    let a = api
        .post(
            "dag/get",
            &[("arg", &format!("{}/tree/hello.txt", fx.cbor))],
        )
        .await;
    let hello = PbNode::decode(&fx.hello, &fx.blocks[&fx.hello]).unwrap();
    let encoded = cid::multibase::encode(cid::multibase::Base::Base64, hello.data.unwrap());
    assert_eq!(
        a.text(),
        format!(
            r#"{{"Data":{{"/":{{"bytes":"{}"}}}},"Links":[]}}"#,
            &encoded[1..]
        )
    );
    let a = api
        .post("dag/get", &[("arg", &format!("{}/n", fx.cbor))])
        .await;
    assert_eq!(a.text(), "5");
    let a = api
        .post("dag/get", &[("arg", &format!("/ipfs/{}/list/0", fx.cbor))])
        .await;
    assert_eq!(a.text(), "1");
    let a = api
        .post("dag/get", &[("arg", &format!("{}/raw", fx.cbor))])
        .await;
    assert_eq!(a.text(), r#"{"/":{"bytes":"cmF3IGJsb2NrIGJ5dGVz"}}"#);
    let a = api
        .post("dag/get", &[("arg", &format!("{root}/Links/0"))])
        .await;
    assert_eq!(a.status, 500, "dag-pb paths are UnixFS names: {}", a.text());
    let m = api
        .post("dag/get", &[("arg", &format!("{}/nope", fx.cbor))])
        .await
        .kubo_error(500, 0);
    assert!(m.contains("nope"), "{m}");
    let m = api
        .post(
            "dag/get",
            &[("arg", &fx.cbor.to_string()), ("output-codec", "dag-cbor")],
        )
        .await
        .kubo_error(400, 1);
    assert!(m.contains("dag-cbor"), "{m}");
    let m = api
        .post("dag/get", &[("arg", absent)])
        .await
        .kubo_error(500, 0);
    assert!(m.contains("could not find"), "{m}");

    stop.send(()).unwrap();
    task.await.unwrap();
}
