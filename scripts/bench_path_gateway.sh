#!/usr/bin/env bash
# A 1 GiB UnixFS file through the deserialized path gateway (issue 17): time to first byte and
# throughput of the whole file and of a 100 MiB Range from its middle, against reading the
# stored CAR file itself, with the daemon's peak RSS. One run each, page cache warm (the CAR is
# read once first). Prints one JSON object per measurement on stdout.
#
#   scripts/bench.sh path-gateway
#   HYDRANT_BIN=/path/to/hydrant scripts/bench.sh path-gateway
#
# The file is `head -c 1GiB /dev/urandom`, added with `hydrant add` (unixfs-v1-2025: 1 MiB raw
# leaves) into a fresh repository (local storage, embedded index, DHT off); then `hydrant daemon`
# serves it and curl reads http://127.0.0.1:<port>/ipfs/<cid> to /dev/null.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
HYDRANT_BIN=${HYDRANT_BIN:-$ROOT/target/release/hydrant}
[[ -x "$HYDRANT_BIN" ]] || cargo build --release --locked -p hydrant-cli >&2
WORK=$(mktemp -d "${BENCH_WORK_DIR:-$ROOT/target}/bench-path-gateway.XXXXXX")
DAEMON=
cleanup() { [[ -n "$DAEMON" ]] && kill "$DAEMON" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

head -c $((1 << 30)) /dev/urandom >"$WORK/file.bin"
"$HYDRANT_BIN" --repo "$WORK/repo" init >/dev/null 2>&1
printf '[swarm]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[dht]\nenabled = false\n[api]\nlisten = "127.0.0.1:0"\n[gateway]\nlisten = "127.0.0.1:0"\n' >"$WORK/repo/config.toml"
summary=$("$HYDRANT_BIN" --repo "$WORK/repo" add --json "$WORK/file.bin" | tail -1)
CID=$(jq -r '.roots[0]' <<<"$summary")
CAR="$WORK/repo/objects/$(jq -r '.car_key' <<<"$summary")"
rm "$WORK/file.bin"

"$HYDRANT_BIN" --repo "$WORK/repo" daemon >"$WORK/info" 2>"$WORK/log" &
DAEMON=$!
for _ in $(seq 100); do [[ -s "$WORK/info" ]] && break; sleep 0.1; done
GATEWAY=$(head -1 "$WORK/info" | jq -r '.gateway_url')

cat "$CAR" >/dev/null # warm the page cache
t0=$(date +%s.%N); cat "$CAR" >/dev/null; t1=$(date +%s.%N)
car_bytes=$(stat -c %s "$CAR")
awk -v s="$(awk "BEGIN {print $t1 - $t0}")" -v b="$car_bytes" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
  'BEGIN {printf "{\"benchmark\":\"path_gateway\",\"case\":\"read stored CAR (cat)\",\"bytes\":%d,\"ttfb_seconds\":null,\"seconds\":%.3f,\"mib_per_s\":%.1f,\"loadavg\":%s}\n", b, s, b / s / 1048576, l}'

measure() { # case, extra curl args...
  local name=$1; shift
  curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n' "$@" "$GATEWAY/ipfs/$CID" >"$WORK/curl"
  read -r code bytes ttfb total <"$WORK/curl"
  awk -v n="$name" -v c="$code" -v b="$bytes" -v f="$ttfb" -v t="$total" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN {printf "{\"benchmark\":\"path_gateway\",\"case\":\"%s\",\"status\":%d,\"bytes\":%d,\"ttfb_seconds\":%.4f,\"seconds\":%.3f,\"mib_per_s\":%.1f,\"loadavg\":%s}\n", n, c, b, f, t, b / t / 1048576, l}'
}
measure "whole file (GET /ipfs/<cid>)"
measure "whole file again (read cache warm)"
measure "Range: 100 MiB from the middle" -H "Range: bytes=536870912-641728511"
measure "Range: last 1 MiB" -H "Range: bytes=-1048576"
peak=$(awk '/VmHWM/ {print $2 * 1024}' "/proc/$DAEMON/status")
printf '{"benchmark":"path_gateway","case":"daemon peak RSS","peak_rss_bytes":%s}\n' "$peak"
