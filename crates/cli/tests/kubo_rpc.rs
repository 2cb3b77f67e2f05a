//! The upload side of the Kubo RPC API (issue 16, item 3) on a running daemon, with raw HTTP so
//! that the wire is what is tested: `add` gives the CIDs of the importer with Kubo's defaults
//! and stores and pins them; refused uploads (a multipart body cut in the middle, a
//! `dag/import` that is not a CAR, bad options) answer Kubo errors and store and pin nothing;
//! the method and command rules. The read commands and the official JS client are tested in
//! `kubo_read.rs` and `interop/test/kubo-rpc.test.mjs`.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use cid::Cid;
use common::{Ports, Replica, committed_cars, hydrant_bin, run_json};
use hydrant_unixfs::importer::{DirectoryBuilder, FileImporter, ImportProfile, Metadata};

const BOUNDARY: &str = "----hydrant-test-boundary";

/// One multipart part: a file (`Some(bytes)`) or a directory (`None`) at `path`.
fn part(path: &str, content: Option<&[u8]>) -> Vec<u8> {
    let (name, kind) = match content {
        Some(_) => ("file", "application/octet-stream"),
        None => ("dir", "application/x-directory"),
    };
    let encoded: String = path
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut out = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
         filename=\"{encoded}\"\r\nContent-Type: {kind}\r\n\r\n"
    )
    .into_bytes();
    out.extend(content.unwrap_or_default());
    out.extend(b"\r\n");
    out
}

fn multipart(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = parts.concat();
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post(api: &str, command: &str, body: Vec<u8>) -> (u16, String) {
    let answer = reqwest::Client::new()
        .post(format!("{api}/api/v0/{command}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The CID and cumulative size the importer gives `data` with `profile`.
fn file_cid(profile: &ImportProfile, data: &[u8]) -> (Cid, u64) {
    let mut file = FileImporter::new(profile, Metadata::default()).unwrap();
    let _ = file.push(data);
    let imported = file.finish();
    (imported.cid, imported.size)
}

fn pinned(repo: &Path) -> Vec<String> {
    let out = Command::new(hydrant_bin())
        .arg("--repo")
        .arg(repo)
        .args(["pin", "ls", "--json"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["cid"].to_string())
        .map(|c| c.trim_matches('"').to_owned())
        .collect()
}

#[tokio::test]
async fn add_matches_the_importer_and_refused_uploads_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    run_json(
        Command::new(hydrant_bin())
            .arg("--repo")
            .arg(&repo)
            .args(["init", "--json"]),
    );
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();
    let daemon = Replica::start(&repo, Ports::free());
    let api = daemon.info.api_url.clone();

    // A file over three chunks of Kubo's default (256 KiB, dag-pb leaves, CIDv0).
    let v0 = ImportProfile::unixfs_v0_2015();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (status, text) = post(
        &api,
        "add?stream-channels=true",
        multipart(&[part("", Some(&data))]),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (cid, size) = file_cid(&v0, &data);
    assert!(cid.to_string().starts_with("Qm"), "Kubo's default is CIDv0");
    assert_eq!(
        lines(&text),
        [
            serde_json::json!({ "Name": cid.to_string(), "Hash": cid.to_string(), "Size": size.to_string() })
        ]
    );
    assert!(
        pinned(&repo).contains(&cid.to_string()),
        "add pins by default"
    );

    // A directory with a nested file, an awkward name and an empty directory, wrapped; with
    // cid-version=1 (raw leaves, as Kubo) and progress lines.
    let v1 = ImportProfile::unixfs_v0_2015()
        .with_overrides(&hydrant_unixfs::importer::ProfileOverrides {
            cid_version: Some(1),
            ..Default::default()
        })
        .unwrap();
    let body = multipart(&[
        part("docs", None),
        part("docs/a b+c%.txt", Some(b"hello")),
        part("docs/empty", None),
        part("docs/sub/deep.bin", Some(&data)),
    ]);
    let (status, text) = post(
        &api,
        "add?cid-version=1&wrap-with-directory=true&progress=true&pin=false",
        body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let events = lines(&text);
    let (hello, hello_size) = file_cid(&v1, b"hello");
    let (deep, deep_size) = file_cid(&v1, &data);
    let dir_of = |entries: &[(&str, Cid, u64)]| {
        let mut d = DirectoryBuilder::new(&v1, Metadata::default()).unwrap();
        for (name, cid, size) in entries {
            d.add(name, *cid, *size).unwrap();
        }
        let imported = d.finish().unwrap();
        (imported.cid, imported.size)
    };
    let (sub, sub_size) = dir_of(&[("deep.bin", deep, deep_size)]);
    let (empty, empty_size) = dir_of(&[]);
    let (docs, docs_size) = dir_of(&[
        ("a b+c%.txt", hello, hello_size),
        ("empty", empty, empty_size),
        ("sub", sub, sub_size),
    ]);
    let (wrapper, _) = dir_of(&[("docs", docs, docs_size)]);
    let hash_of = |name: &str| {
        events
            .iter()
            .find(|e| e["Name"] == name && e.get("Hash").is_some())
            .unwrap_or_else(|| panic!("no line for {name:?} in {text}"))["Hash"]
            .clone()
    };
    assert_eq!(hash_of("docs/a b+c%.txt"), hello.to_string());
    assert_eq!(hash_of("docs/sub/deep.bin"), deep.to_string());
    assert_eq!(hash_of("docs/empty"), empty.to_string());
    assert_eq!(hash_of("docs/sub"), sub.to_string());
    assert_eq!(hash_of("docs"), docs.to_string());
    assert_eq!(events.last().unwrap()["Name"], "", "the wrapper comes last");
    assert_eq!(events.last().unwrap()["Hash"], wrapper.to_string());
    assert!(
        events
            .iter()
            .any(|e| e["Name"] == "docs/sub/deep.bin" && e["Bytes"] == data.len()),
        "a progress line per file: {text}"
    );
    assert!(!pinned(&repo).contains(&wrapper.to_string()), "pin=false");

    // Refused uploads store and pin nothing.
    let cars_before = committed_cars(&api).await.len();
    let pins_before = pinned(&repo);

    // A multipart body cut in the middle: the connection ends before Content-Length.
    let whole = multipart(&[part("cut.bin", Some(&data))]);
    let address = api.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        write!(
            socket,
            "POST /api/v0/add HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; \
             boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
            whole.len()
        )
        .unwrap();
        socket.write_all(&whole[..whole.len() / 2]).unwrap();
        socket.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"Type\":\"error\""), "{answer}");

    // Not a CAR: the ingest's error names the offset.
    let (status, text) = post(
        &api,
        "dag/import",
        multipart(&[part("x.car", Some(b"not a car at all"))]),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (error["Code"].as_u64(), error["Type"].as_str()),
        (Some(1), Some("error"))
    );
    assert!(
        error["Message"].as_str().unwrap().contains("offset"),
        "{text}"
    );

    // Bad options and paths, refused after the body is read (no broken pipe).
    for (query, parts, says) in [
        ("add?chunker=rabin", vec![part("f", Some(&data))], "rabin"),
        ("add?trickle=true", vec![part("f", Some(b"x"))], "trickle"),
        (
            "add?cid-version=2",
            vec![part("f", Some(b"x"))],
            "CID version",
        ),
        ("add", vec![part("a/../b", Some(b"x"))], ".."),
        (
            "add",
            vec![part("same", Some(b"x")), part("same", Some(b"y"))],
            "twice",
        ),
        ("add", vec![], "no file"),
    ] {
        let (status, text) = post(&api, query, multipart(&parts)).await;
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains(says), "{query}: {text}");
    }
    assert_eq!(
        committed_cars(&api).await.len(),
        cars_before,
        "nothing stored"
    );
    assert_eq!(pinned(&repo), pins_before, "nothing pinned");

    // block/put: raw by default, unpinned; format=v0 gives a CIDv0.
    let (status, text) = post(
        &api,
        "block/put",
        multipart(&[part("", Some(b"a raw block"))]),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let put: serde_json::Value = serde_json::from_str(&text).unwrap();
    let raw = Cid::new_v1(
        0x55,
        hydrant_blocks::digest(0x12, 32, b"a raw block").unwrap(),
    );
    assert_eq!(
        put,
        serde_json::json!({ "Key": raw.to_string(), "Size": 11 })
    );
    let (status, text) = post(
        &api,
        "block/put?format=v0",
        multipart(&[part("", Some(b"\x0a\x02\x08\x01"))]),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"Key\":\"Qm"), "{text}");

    // The method and command rules.
    let http = reqwest::Client::new();
    let get = http
        .get(format!("{api}/api/v0/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let unknown = http
        .post(format!("{api}/api/v0/files/write"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert!(
        body["Message"].as_str().unwrap().contains("files/write"),
        "{body}"
    );
    let bad = http
        .post(format!("{api}/api/v0/routing/findprovs?arg=notacid"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["Code"], 1);
}
