#!/usr/bin/env bash
# `hydrant add` against `ipfs-car pack` and `openssl dgst -sha256` of the same input (issue 16),
# one run each, with wall time and peak RSS (/usr/bin/time -v). Prints one JSON object per
# (input, tool) on stdout.
#
#   scripts/bench.sh add                   # a 1 GiB file (generated) and /usr/share/doc
#   ADD_INPUTS="/path/a /path/b" scripts/bench.sh add
#
# hydrant: `hydrant --repo R add -r --json INPUT` into a fresh repository, no daemon (reads the
# input once, spills the CAR, ingests it: hashes every block again and stores the CAR).
# ipfs-car: `ipfs-car pack INPUT --output X.car` (interop/node_modules; packs only: nothing is
# verified or stored). openssl: `openssl dgst -sha256` of every file of INPUT, the hashing limit.
# ratio = openssl seconds / tool seconds (1.0: as fast as hashing the input once).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
HYDRANT_BIN=${HYDRANT_BIN:-$ROOT/target/release/hydrant}
[[ -x "$HYDRANT_BIN" ]] || cargo build --release --locked -p hydrant-cli >&2
[[ -x interop/node_modules/.bin/ipfs-car ]] || scripts/interop.sh install >&2
WORK=$(mktemp -d "${ADD_WORK_DIR:-$ROOT/target}/bench-add.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

inputs=(${ADD_INPUTS:-})
if [[ ${#inputs[@]} -eq 0 ]]; then
  head -c $((1 << 30)) /dev/urandom >"$WORK/1gib.bin"
  inputs=("$WORK/1gib.bin" /usr/share/doc)
fi

# Runs "$@" under /usr/bin/time -v; prints "<seconds> <peak RSS bytes>".
timed() {
  /usr/bin/time -v -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" ||
    { cat "$WORK/stderr" >&2; return 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]}
              /Maximum resident set size/ {rss = $2 * 1024}
              END {print s, rss}' "$WORK/time"
}

for input in "${inputs[@]}"; do
  bytes=$(du -sbL "$input" | cut -f1)
  sync
  read -r o_s o_rss < <(timed sh -c "find -L '$input' -type f -print0 | xargs -0 openssl dgst -sha256")
  rm -rf "$WORK/repo"
  "$HYDRANT_BIN" --repo "$WORK/repo" init >/dev/null 2>&1
  printf '[dht]\nenabled = false\n' >"$WORK/repo/config.toml"
  read -r h_s h_rss < <(timed "$HYDRANT_BIN" --repo "$WORK/repo" add -r --json "$input")
  read -r c_s c_rss < <(timed interop/node_modules/.bin/ipfs-car pack "$input" --output "$WORK/ipfs-car.car")
  rm -f "$WORK/ipfs-car.car"
  for row in "openssl $o_s $o_rss" "hydrant $h_s $h_rss" "ipfs-car $c_s $c_rss"; do
    read -r tool s rss <<<"$row"
    printf '{"benchmark":"add","input":"%s","input_bytes":%s,"tool":"%s","seconds":%s,"peak_rss_bytes":%s,"ratio_to_openssl":%s,"loadavg":%s}\n' \
      "$input" "$bytes" "$tool" "$s" "$rss" "$(awk "BEGIN {printf \"%.3f\", $o_s / $s}")" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
