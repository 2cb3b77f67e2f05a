#!/usr/bin/env bash
# Interop tests: Helia (JS IPFS) and ipfs-car against the hydrant binary.
#
#   scripts/interop.sh                          # all tests in interop/test/
#   scripts/interop.sh test/gateway.test.mjs    # selected files (relative to interop/)
#   scripts/interop.sh bench                    # 100 MB Helia-vs-Hydrant fetch benchmark (JSON on stdout)
#   scripts/interop.sh install                  # only install interop/node_modules (the Rust
#                                               # failover test runs interop/bin/lb-fetch.mjs)
#   HYDRANT_BIN=/path/to/hydrant scripts/interop.sh
#
# Needs node >= 20 and npm; installs interop/node_modules with `npm ci`.
# Exit code is the test runner's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/interop"
HYDRANT_BIN="${HYDRANT_BIN:-$ROOT/target/release/hydrant}"
case "$HYDRANT_BIN" in /*) ;; *) HYDRANT_BIN="$PWD/$HYDRANT_BIN" ;; esac

if [[ ! -x "$HYDRANT_BIN" ]]; then
  echo "interop.sh: hydrant binary not found or not executable at: $HYDRANT_BIN" >&2
  echo "interop.sh: build it first (cargo build --release -p <cli crate>) or set HYDRANT_BIN" >&2
  exit 2
fi
export HYDRANT_BIN

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "interop.sh: node and npm are required" >&2
  exit 2
fi

# Install exactly what package-lock.json pins; skip when already installed from
# this very lock file.
if ! cmp -s "$INTEROP/package-lock.json" "$INTEROP/node_modules/.package-lock.json.installed" 2>/dev/null; then
  npm ci --prefix "$INTEROP" --no-audit --no-fund --loglevel=error >/dev/null
  cp "$INTEROP/package-lock.json" "$INTEROP/node_modules/.package-lock.json.installed"
fi

cd "$INTEROP"
if [[ "${1:-}" == "install" ]]; then
  exit 0
fi
if [[ "${1:-}" == "bench" ]]; then
  exec node --import ./polyfill.mjs bench/fetch-100mb.mjs
fi
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  files=(test/*.test.mjs)
fi
set +e
node --import ./polyfill.mjs --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
rc=$?
set -e
exit $rc
