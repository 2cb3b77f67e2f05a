#!/usr/bin/env bash
# Benchmarks recorded in BENCHMARKS.md. Prints one JSON object per benchmark on stdout.
#
#   scripts/bench.sh            # ingest vs openssl, then Helia-vs-Hydrant 100 MB fetch
#   scripts/bench.sh ingest     # only the ingest benchmark
#   BENCH_RUNS=5 scripts/bench.sh
#   scripts/bench.sh scale [N...]   # the scale benchmark: scripts/bench_scale.sh (BENCHMARKS.md)
#   scripts/bench.sh add        # hydrant add vs ipfs-car pack vs openssl: scripts/bench_add.sh
#   scripts/bench.sh path-gateway   # a 1 GiB file through the path gateway: scripts/bench_path_gateway.sh
#   scripts/bench.sh ipni [CARS] [PER_CAR]   # IPNI publishing of CARS CARs x PER_CAR multihashes
#                               # (default 1000 x 10000): crates/ipni-publisher/examples/publish_bench.rs
#
# ingest: the 100 MB CAR packed by ipfs-car (interop/.cache, built on first use) is hashed with
# `openssl dgst -sha256` and ingested by `hydrant ingest` into a fresh repository (no daemon: the
# CLI opens the repository itself), alternately, BENCH_RUNS times. The repository has been used
# once before the timed run (a 2 KB fixture ingested), so that creating its embedded index (about
# 80 fsyncs, once per repository) is not timed; BENCH_FRESH_REPO=1 times that too. The medians
# are reported and
# ratio = openssl_seconds / hydrant_seconds (1.0: ingest runs at the speed of hashing the file once
# with the CPU's SHA instructions). The page cache is warm for both after the first run.
# fetch: scripts/interop.sh bench (interop/bench/fetch-100mb.mjs), same BENCH_RUNS.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [[ "${1:-}" == "scale" ]]; then shift; exec scripts/bench_scale.sh "$@"; fi
if [[ "${1:-}" == "add" ]]; then shift; exec scripts/bench_add.sh "$@"; fi
if [[ "${1:-}" == "path-gateway" ]]; then shift; exec scripts/bench_path_gateway.sh "$@"; fi
if [[ "${1:-}" == "ipni" ]]; then
  shift
  exec cargo run --release --locked -q -p hydrant-ipni-publisher --example publish_bench -- "$@"
fi
RUNS=${BENCH_RUNS:-5}
HYDRANT_BIN=${HYDRANT_BIN:-$ROOT/target/release/hydrant}
[[ -x "$HYDRANT_BIN" ]] || cargo build --release --locked -p hydrant-cli >&2

[[ -d interop/node_modules ]] || npm ci --prefix interop --no-audit --no-fund --loglevel=error >&2
CAR=$(cd interop && node -e "import('./lib/fixture.mjs').then(async f => console.log((await f.randomFileFixture()).car))")

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/openssl" && : >"$TMP/hydrant"
for i in $(seq "$RUNS"); do
  t0=$(now); openssl dgst -sha256 "$CAR" >/dev/null; t1=$(now)
  awk "BEGIN {print $t1 - $t0}" >>"$TMP/openssl"
  repo="$TMP/repo-$i"
  "$HYDRANT_BIN" --repo "$repo" init >/dev/null 2>&1
  [[ -n "${BENCH_FRESH_REPO:-}" ]] ||
    "$HYDRANT_BIN" --repo "$repo" ingest testdata/fixtures/ipld/carv1-basic.car >/dev/null 2>&1
  t0=$(now); "$HYDRANT_BIN" --repo "$repo" ingest --json "$CAR" >"$TMP/ingest.json"; t1=$(now)
  awk "BEGIN {print $t1 - $t0}" >>"$TMP/hydrant"
  rm -rf "$repo"
  echo "ingest run $i: openssl $(tail -1 "$TMP/openssl") s, hydrant $(tail -1 "$TMP/hydrant") s" >&2
done
bytes=$(stat -c %s "$CAR")
o=$(median <"$TMP/openssl"); h=$(median <"$TMP/hydrant")
blocks=$(grep -o '"blocks":[0-9]*' "$TMP/ingest.json" | cut -d: -f2)
fresh=$([[ -n "${BENCH_FRESH_REPO:-}" ]] && echo true || echo false)
awk -v b="$bytes" -v o="$o" -v h="$h" -v r="$RUNS" -v n="$blocks" -v f="$fresh" 'BEGIN {
  printf "{\"benchmark\":\"ingest-100mb\",\"fresh_repo\":%s,\"car_bytes\":%d,\"blocks\":%d,\"runs\":%d,", f, b, n, r
  printf "\"openssl_seconds\":%.3f,\"hydrant_seconds\":%.3f,", o, h
  printf "\"openssl_mb_per_s\":%.0f,\"hydrant_mb_per_s\":%.0f,\"ratio\":%.3f}\n", b/o/1e6, b/h/1e6, o/h
}'

[[ "${1:-}" == "ingest" ]] && exit 0
BENCH_RUNS=$RUNS HYDRANT_BIN="$HYDRANT_BIN" scripts/interop.sh bench
