#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property, integration) and the interop
# tests against Helia (npm). One release build serves both, so dependencies compile once.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it (cargo install --locked cargo-nextest)" >&2
  cargo install --locked cargo-nextest
fi

echo "== building hydrant (release)"
cargo build --release --locked -p hydrant-cli

# The 200-node DHT simulation (crates/dht/tests/many_nodes.rs) keeps ~11,000 sockets open in one
# process: raise the soft descriptor limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt 16384 ]]; then
  echo "warning: open-file limit $(ulimit -n) < 16384; the many-node DHT test may fail" >&2
fi

# crates/pg tests start a private PostgreSQL cluster from the server binaries; the scale-out
# tests put HAProxy in front of several nodes (crates/testkit); the browser test
# (crates/cli/tests/browser.rs) runs headless Chromium.
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if (( ${#missing[@]} )) && [[ $(id -u) == 0 ]]; then
  echo "== installing ${missing[*]} (for crates/pg, crates/testkit and the browser tests)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The S3 tests run against a private Garage (built once into ~/.cache/hydrant, ~11 min).
GARAGE_BIN=$(scripts/garage.sh)
export GARAGE_BIN
echo "== Garage (S3) binary: $GARAGE_BIN"

# The import-kubo test (crates/cli/tests/import_kubo.rs) makes a repository with a real Kubo, and
# the pub/sub interop test (crates/cli/tests/pubsub_kubo.rs) runs one as a peer, from
# the kubo-python wheel (installed once into a venv in ~/.cache/hydrant).
KUBO_PYTHON=$(scripts/kubo-python.sh)
export KUBO_PYTHON
echo "== Python with kubo-python: $KUBO_PYTHON"

# The load-balancer failover test (crates/cli/tests/replicas.rs) drives a Helia client.
HYDRANT_BIN="$PWD/target/release/hydrant" scripts/interop.sh install

echo "== Rust tests"
cargo nextest run --release --locked --workspace --no-fail-fast

echo "== interop tests (Helia)"
HYDRANT_BIN="$PWD/target/release/hydrant" scripts/interop.sh
