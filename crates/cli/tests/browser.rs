//! A real browser on the path gateway (issue 17, item 1): headless Chromium (Debian's
//! `chromium`, installed by `scripts/test.sh`) opens an HTML page whose image is loaded through
//! the gateway, and an upstream directory-listing fixture; the test asserts the DOM Chromium
//! built (the page's script records the image's decoded size) and keeps a screenshot in
//! `target/test-artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Ports, Replica, add_tree, hydrant_bin, run_json};

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(hydrant_bin());
    command.arg("--repo").arg(repo);
    command
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Debian's Chromium binary; the test fails, saying how to get it, when it is missing.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Chromium is needed: apt-get install chromium (scripts/test.sh does it)")
}

/// Runs headless Chromium on `url` with `args`; its standard output.
fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn chromium_renders_a_page_with_its_image_and_a_directory_listing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    run_json(hydrant(&repo).args(["init", "--json"]));
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();
    let site = add_tree(&repo, &fixtures().join("browser-site"));
    let listing = run_json(
        hydrant(&repo)
            .args(["ingest", "--json"])
            .arg(fixtures().join("dir_listing-fixtures.car")),
    )["roots"][0]
        .as_str()
        .unwrap()
        .to_owned();

    let daemon = Replica::start(&repo, Ports::free());
    let gateway = &daemon.info.gateway_url;
    let profile = dir.path().join("chromium-profile");

    // The page (index.html of the directory, reached through the trailing-slash redirect)
    // and its image, decoded by the browser.
    let page = format!("{gateway}/ipfs/{site}");
    let dom = browse(&profile, &page, &["--dump-dom"]);
    assert!(dom.contains("Served by Hydrant"), "{dom}");
    assert!(
        dom.contains("data-image=\"48x24\""),
        "the image did not load: {dom}"
    );
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("browser-index.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &profile,
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=640,400",
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "{} bytes",
        png.len()
    );

    // The upstream listing fixture (gateway-conformance dir_listing_test.go): every entry, by
    // name and with a link, including the non-ASCII one.
    let dom = browse(
        &profile,
        &format!("{gateway}/ipfs/{listing}/"),
        &["--dump-dom"],
    );
    for name in ["api", "ipfs", "ipns", "ą"] {
        assert!(dom.contains(name), "{name} missing from the listing: {dom}");
    }
    assert!(dom.contains("<a "), "the listing has links: {dom}");
}
