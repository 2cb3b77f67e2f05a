#!/usr/bin/env bash
# Scale benchmark (issue 15, item 4; BENCHMARKS.md, "Scale benchmark"). Run as
#
#   scripts/bench.sh scale [N...]          # default N: 10000 1000000 10000000
#   SCALE_BACKENDS=pg scripts/bench.sh scale 100000000
#
# For each backend (SCALE_BACKENDS, default "fjall pg") and each N: a fresh repository (local
# storage, DHT off; for "pg" the index in a schema of its own on a PostgreSQL cluster this script
# starts and stops), N raw blocks of 32 bytes ingested offline as CARs of at most
# SCALE_CAR_BLOCKS blocks (default 10^6) with `hydrant ingest --json` under /usr/bin/time -v, then
# the daemon started twice (the first start builds the presence filter and writes
# filter.snapshot when stopped with SIGTERM; the second loads it), then lookup latency against the
# second: crates/cli/tests/scale_lookup.rs (Bitswap want-to-block and gateway raw GETs of random
# blocks). Prints one JSON object per (backend, N) on stdout, progress on stderr.
#
# Environment:
#   SCALE_BACKENDS     "fjall pg" (either or both)
#   SCALE_CAR_DIR      generated CARs, kept between runs (default target/scale-cars; never
#                      deleted by this script: 69 bytes per block)
#   SCALE_CAR_BLOCKS   most blocks per CAR (default 1000000); each CAR is one `hydrant ingest`
#   SCALE_DROP_CARS    when set, each CAR is deleted once ingested (10^8 blocks: saves 6.9 GB)
#   SCALE_WORK_DIR     parent of the run's temporary directory (repositories, PostgreSQL data;
#                      default target; removed at exit unless SCALE_KEEP=1)
#   SCALE_SAMPLES      timed lookups of each kind (default 2000)
#   SCALE_READY_TIMEOUT  seconds a daemon may take to become ready (default 3600)
#   SCALE_WARM         when set, the lookups are timed a second time after the data they read is
#                      in memory (the stored CARs and, for fjall, the index directory read once;
#                      for pg, pg_prewarm of the primary key): `*_warm_ms` in the JSON. At 10^8
#                      blocks the data outgrows the page cache left by the ingest's own files.
#   SCALE_INDEX_OPTIONS  extra lines for the repository's [index] table (fjall: e.g.
#                      "cache_bytes = 268435456")
#   SCALE_PG_OPTIONS   extra postgres server options, e.g. "-c shared_buffers=1GB"
#   SCALE_PG_STATEMENT_TIMEOUT  the repository's index.statement_timeout_secs (default 300)
#   HYDRANT_PG_BIN     directory of initdb/pg_ctl/psql (default: newest /usr/lib/postgresql/*/bin)
#   HYDRANT_BIN        the hydrant binary (default target/release/hydrant, built when missing)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

BACKENDS=${SCALE_BACKENDS:-fjall pg}
CAR_DIR=${SCALE_CAR_DIR:-$ROOT/target/scale-cars}
CAR_BLOCKS=${SCALE_CAR_BLOCKS:-1000000}
SAMPLES=${SCALE_SAMPLES:-2000}
READY_TIMEOUT=${SCALE_READY_TIMEOUT:-3600}
HYDRANT_BIN=${HYDRANT_BIN:-$ROOT/target/release/hydrant}
(($#)) || set -- 10000 1000000 10000000

die() { echo "bench scale: $*" >&2; exit 1; }
log() { echo "[scale $(date +%T)] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }

for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$n'"; done
[[ $CAR_BLOCKS =~ ^[1-9][0-9]*$ ]] || die "SCALE_CAR_BLOCKS must be a positive integer"
for b in $BACKENDS; do [[ $b == fjall || $b == pg ]] || die "unknown backend '$b' (fjall or pg)"; done
for tool in jq curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is needed (apt-get install -y jq curl python3 time)"
done

[[ -x "$HYDRANT_BIN" ]] || cargo build --release --locked -p hydrant-cli >&2
log "building the lookup client (crates/cli/tests/scale_lookup.rs)"
LOOKUP_BIN=$(cargo test --release --locked -p hydrant-cli --test scale_lookup --no-run \
  --message-format=json 2>/dev/null |
  jq -r 'select(.executable != null and .target.name == "scale_lookup") | .executable')
[[ -x "$LOOKUP_BIN" ]] || die "building the scale_lookup test failed (cargo test -p hydrant-cli --test scale_lookup --no-run)"

mkdir -p "$CAR_DIR" "${SCALE_WORK_DIR:-$ROOT/target}"
WORK=$(mktemp -d "${SCALE_WORK_DIR:-$ROOT/target}/scale-run.XXXXXX")
DAEMON_PID=""
PG_STARTED=""

# --- PostgreSQL: a private cluster in $WORK/pg (as scripts/test.sh's crates/testkit does) ------
PG_BIN=""
as_pg() { # runs a server binary, as the postgres user when we are root (PostgreSQL refuses root)
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$PG_BIN/$1" "${@:2}"; else "$PG_BIN/$1" "${@:2}"; fi
}
pg_start() {
  PG_BIN=${HYDRANT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  [[ -n $PG_BIN && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] ||
    die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install -y postgresql, or set HYDRANT_PG_BIN)"
  mkdir -p "$WORK/pg"
  # The cluster runs as postgres when we are root: it must reach $WORK/pg (mktemp made $WORK 700).
  [[ $(id -u) != 0 ]] || { chmod 711 "$WORK" && chown postgres: "$WORK/pg"; }
  as_pg initdb -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C >"$WORK/pg/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -20 "$WORK/pg/initdb.log")"
  as_pg pg_ctl -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-p 5432 -k $WORK/pg -c listen_addresses='' ${SCALE_PG_OPTIONS:-}" start >/dev/null ||
    die "pg_ctl start failed: $(tail -20 "$WORK/pg/server.log")"
  PG_STARTED=1
  PG_URL="host=$WORK/pg port=5432 user=postgres dbname=postgres"
  log "PostgreSQL $(as_pg psql -X -At -d "$PG_URL" -c 'show server_version') started in $WORK/pg"
}
psql_value() { PGOPTIONS="-c client_min_messages=warning" as_pg psql -X -q -At -v ON_ERROR_STOP=1 -d "$PG_URL" -c "$1"; }

cleanup() {
  local rc=$?
  if [[ -n $DAEMON_PID ]]; then kill -KILL "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
  if [[ -n $PG_STARTED ]]; then as_pg pg_ctl -D "$WORK/pg/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true; fi
  if [[ -n ${SCALE_KEEP:-} ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- CARs: blocks 0 .. N-1 in CARs of at most CAR_BLOCKS, generated once into CAR_DIR ----------
car_specs() { # prints "start count" of the CARs holding blocks 0 .. $1-1
  local n=$1 start=0 count
  while ((start < n)); do
    count=$((n - start < CAR_BLOCKS ? n - start : CAR_BLOCKS))
    echo "$start $count"
    start=$((start + count))
  done
}
car_file() { # $1 start, $2 count: prints the CAR's path, generating it when missing
  local file="$CAR_DIR/small-blocks-$1-$2.car"
  if [[ ! -s $file ]]; then
    log "generating $file"
    python3 scripts/gen_small_blocks_car.py "$2" "$file.tmp" "$1"
    mv "$file.tmp" "$file"
  fi
  echo "$file"
}

# --- the daemon ----------------------------------------------------------------------------------
API_URL="" GATEWAY_URL="" SWARM_ADDR=""
# $1 repo, $2 log file; sets DAEMON_PID, the URLs, READY_S (process start to /readyz 200) and
# FILTER_S (process start to the presence filter built: readiness does not wait for it).
daemon_start() {
  local repo=$1 out=$2 t0 line deadline
  rm -f "$out" "$out.stdout" # never read a previous daemon's line before the shell truncates it
  t0=$(now)
  "$HYDRANT_BIN" --repo "$repo" daemon --swarm-listen /ip4/127.0.0.1/tcp/0 \
    --gateway-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 >"$out.stdout" 2>"$out" &
  DAEMON_PID=$!
  deadline=$(($(date +%s) + READY_TIMEOUT))
  # One JSON line (DaemonInfo) on stdout once it is listening; wait for its newline.
  until [[ -s $out.stdout && $(wc -l <"$out.stdout") -ge 1 ]]; do
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited at start: $(tail -20 "$out")"
    (($(date +%s) < deadline)) || die "the daemon printed nothing in ${READY_TIMEOUT} s"
    sleep 0.02
  done
  line=$(head -1 "$out.stdout")
  API_URL=$(jq -r .api_url <<<"$line")
  GATEWAY_URL=$(jq -r .gateway_url <<<"$line")
  SWARM_ADDR=$(jq -r '.swarm_addrs[0]' <<<"$line")
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "$API_URL/readyz") == 200 ]]; do
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited before ready: $(tail -20 "$out")"
    (($(date +%s) < deadline)) || die "the daemon not ready in ${READY_TIMEOUT} s: $(tail -5 "$out")"
    sleep 0.05
  done
  READY_S=$(since "$t0")
  until [[ $(curl -s "$API_URL/readyz" | jq -r .filter_built) == true ]]; do
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited before its filter was built: $(tail -20 "$out")"
    (($(date +%s) < deadline)) || die "the filter not built in ${READY_TIMEOUT} s: $(tail -5 "$out")"
    sleep 0.05
  done
  FILTER_S=$(since "$t0")
}
daemon_stop() { # SIGTERM (a clean stop writes filter.snapshot) and wait
  kill -TERM "$DAEMON_PID"
  local rc=0
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
  ((rc == 0)) || die "the daemon exited with status $rc on SIGTERM"
}
memory() { curl -sf "$API_URL/api/v1/debug/memory" || die "GET $API_URL/api/v1/debug/memory failed"; }

# --- one (backend, N) ----------------------------------------------------------------------------
run_one() {
  local backend=$1 n=$2 repo="$WORK/repo-$1-$2" schema="scale_$2" cars t0 ingest_s
  local specs; mapfile -t specs < <(car_specs "$n")
  "$HYDRANT_BIN" --repo "$repo" init --json >/dev/null
  {
    printf '[dht]\nenabled = false\n'
    if [[ $backend == pg ]]; then
      psql_value "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
      # A bulk load on a shared machine: a checkpoint's fsync can hold a COPY of one batch past
      # the default 30 s statement timeout (seen once at 10^8 rows with four COPY streams).
      printf '[index]\nkind = "postgres"\nurl = "%s"\nschema = "%s"\nstatement_timeout_secs = %s\n' \
        "$PG_URL" "$schema" "${SCALE_PG_STATEMENT_TIMEOUT:-300}"
    elif [[ -n ${SCALE_INDEX_OPTIONS:-} ]]; then
      printf '[index]\nkind = "fjall"\npath = "index"\n'
    fi
    [[ -z ${SCALE_INDEX_OPTIONS:-} ]] || printf '%s\n' "$SCALE_INDEX_OPTIONS"
  } >"$repo/config.toml"

  local load_ingest; load_ingest=$(cut -d' ' -f1 /proc/loadavg)
  log "$backend N=$n: ingesting ${#specs[@]} CAR(s) offline, one \`hydrant ingest\` each (load $load_ingest)"
  # Timed: the ingests only, not the generation. Peak RSS: the largest of the ingests.
  local spec file t_car ingest_rss=0 rss
  ingest_s=0
  : >"$WORK/ingest.jsonl"
  for spec in "${specs[@]}"; do
    file=$(car_file $spec)
    t_car=$(now)
    /usr/bin/time -v -o "$WORK/time.txt" "$HYDRANT_BIN" --repo "$repo" ingest --json "$file" \
      >>"$WORK/ingest.jsonl" 2>"$WORK/ingest.log" || die "ingest of $file failed: $(tail -20 "$WORK/ingest.log")"
    ingest_s=$(awk -v a="$ingest_s" -v b="$(since "$t_car")" 'BEGIN {printf "%.3f", a + b}')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2 * 1024}' "$WORK/time.txt")
    ((rss <= ingest_rss)) || ingest_rss=$rss
    [[ -z ${SCALE_DROP_CARS:-} ]] || rm -f "$file"
    ((${#specs[@]} == 1)) || log "$backend N=$n: $(wc -l <"$WORK/ingest.jsonl") of ${#specs[@]} CARs ingested, $ingest_s s so far"
  done
  local ingested
  ingested=$(jq -s 'map(.blocks) | add' "$WORK/ingest.jsonl")
  [[ $ingested == "$n" ]] || die "ingest reported $ingested blocks, expected $n"
  log "$backend N=$n: ingested in $ingest_s s, peak RSS $((ingest_rss / 1048576)) MiB"

  daemon_start "$repo" "$WORK/$backend-$n-daemon-1.log"
  local ready_scan=$READY_S filter_scan=$FILTER_S
  sleep 2
  local mem_scan; mem_scan=$(memory)
  daemon_stop
  log "$backend N=$n: first start ready in $ready_scan s, filter built after $filter_scan s"

  daemon_start "$repo" "$WORK/$backend-$n-daemon-2.log"
  local ready_snapshot=$READY_S filter_snapshot=$FILTER_S snapshot_loaded=false
  grep -q 'presence filter loaded from its snapshot' "$WORK/$backend-$n-daemon-2.log" && snapshot_loaded=true
  sleep 2
  local mem_idle; mem_idle=$(memory)
  log "$backend N=$n: second start ready in $ready_snapshot s (snapshot loaded: $snapshot_loaded); timing lookups"
  local load_lookup; load_lookup=$(cut -d' ' -f1 /proc/loadavg)
  # Each kind takes SAMPLES + 20 distinct blocks: fewer samples when N is too small for that.
  local samples=$((SAMPLES < n / 2 - 20 ? SAMPLES : n / 2 - 20))
  ((samples > 0)) || die "N=$n is too small to sample lookups"
  SCALE_SWARM_ADDR=$SWARM_ADDR SCALE_GATEWAY_URL=$GATEWAY_URL SCALE_BLOCKS=$n SCALE_SAMPLES=$samples \
    "$LOOKUP_BIN" --ignored --nocapture --exact scale_lookup_latency >"$WORK/lookup.out" 2>"$WORK/lookup.err" ||
    die "lookup benchmark failed: $(tail -20 "$WORK/lookup.err") $(tail -5 "$WORK/$backend-$n-daemon-2.log")"
  local lookup; lookup=$(sed -n 's/^SCALE_LOOKUP //p' "$WORK/lookup.out")
  [[ -n $lookup ]] || die "the lookup benchmark printed no result: $(tail -20 "$WORK/lookup.out")"
  local warm=null
  if [[ -n ${SCALE_WARM:-} ]]; then
    log "$backend N=$n: reading the stored CARs and the index into memory, then timing lookups again"
    find "$repo/objects" -type f -exec cat {} + >/dev/null
    if [[ $backend == pg ]]; then
      psql_value "CREATE EXTENSION IF NOT EXISTS pg_prewarm" >/dev/null
      psql_value "SELECT pg_prewarm('$schema.locations_pkey', 'read')" >/dev/null
    else
      find "$repo/index" -type f -exec cat {} + >/dev/null
    fi
    SCALE_SWARM_ADDR=$SWARM_ADDR SCALE_GATEWAY_URL=$GATEWAY_URL SCALE_BLOCKS=$n SCALE_SAMPLES=$samples \
      "$LOOKUP_BIN" --ignored --nocapture --exact scale_lookup_latency >"$WORK/lookup.out" 2>"$WORK/lookup.err" ||
      die "lookup benchmark failed: $(tail -20 "$WORK/lookup.err")"
    warm=$(sed -n 's/^SCALE_LOOKUP //p' "$WORK/lookup.out")
  fi
  local mem_after; mem_after=$(memory)
  daemon_stop

  # Index bytes: every table of the schema (indexes and TOAST included), whatever their names;
  # the embedded index's directory. index_parts: the same per table / per top-level entry.
  local repo_bytes index_bytes index_parts
  repo_bytes=$(du -sb "$repo" | cut -f1)
  if [[ $backend == pg ]]; then
    index_parts=$(psql_value "SELECT coalesce(json_object_agg(c.relname, pg_total_relation_size(c.oid)), '{}')
      FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname = '$schema' AND c.relkind IN ('r', 'p', 'm')")
  else
    index_parts=$(du -sb "$repo/index"/* | jq -Rn '[inputs | split("\t") | {key: (.[1] | split("/") | last), value: (.[0] | tonumber)}] | from_entries')
  fi
  index_bytes=$(jq 'add // 0' <<<"$index_parts")

  jq -cn --arg backend "$backend" --argjson n "$n" --argjson cars "${#specs[@]}" \
    --argjson ingest_s "$ingest_s" --argjson ingest_rss "$ingest_rss" \
    --argjson ready_scan "$ready_scan" --argjson ready_snapshot "$ready_snapshot" \
    --argjson filter_scan "$filter_scan" --argjson filter_snapshot "$filter_snapshot" \
    --argjson snapshot_loaded "$snapshot_loaded" \
    --argjson mem_scan "$mem_scan" --argjson mem_idle "$mem_idle" --argjson mem_after "$mem_after" \
    --argjson lookup "$lookup" --argjson warm "${warm:-null}" --argjson repo_bytes "$repo_bytes" --argjson index_bytes "$index_bytes" \
    --argjson index_parts "$index_parts" \
    --argjson load_ingest "$load_ingest" --argjson load_lookup "$load_lookup" '{
      benchmark: "scale", backend: $backend, blocks: $n, cars: $cars,
      ingest_seconds: $ingest_s, ingest_blocks_per_s: (($n / $ingest_s) | round),
      ingest_peak_rss_bytes: $ingest_rss,
      ready_first_start_seconds: $ready_scan, ready_restart_seconds: $ready_snapshot,
      filter_built_first_start_seconds: $filter_scan, filter_built_restart_seconds: $filter_snapshot,
      restart_loaded_snapshot: $snapshot_loaded,
      idle_rss_first_start_bytes: $mem_scan.process.rss_bytes,
      idle_rss_bytes: $mem_idle.process.rss_bytes,
      index_cache_first_start_bytes: $mem_scan.caches.index_cache_bytes,
      index_memtable_first_start_bytes: $mem_scan.caches.index_memtable_bytes,
      presence_filter_bytes: $mem_idle.caches.presence_filter_bytes,
      index_cache_bytes: $mem_idle.caches.index_cache_bytes,
      index_memtable_bytes: $mem_idle.caches.index_memtable_bytes,
      rss_after_lookups_bytes: $mem_after.process.rss_bytes,
      bitswap_want_to_block_ms: $lookup.bitswap_want_to_block,
      gateway_raw_ms: $lookup.gateway_raw,
      bitswap_want_to_block_warm_ms: $warm.bitswap_want_to_block,
      gateway_raw_warm_ms: $warm.gateway_raw,
      index_bytes: $index_bytes, index_bytes_per_block: (($index_bytes / $n * 10 | round) / 10),
      index_parts_bytes: $index_parts,
      repo_bytes: $repo_bytes, repo_bytes_per_block: (($repo_bytes / $n * 10 | round) / 10),
      loadavg_at_ingest: $load_ingest, loadavg_at_lookups: $load_lookup
    }'

  [[ $backend != pg ]] || psql_value "DROP SCHEMA $schema CASCADE" >/dev/null
  rm -rf "$repo"
}

log "work directory $WORK; CARs in $CAR_DIR; backends: $BACKENDS; N: $*"
for backend in $BACKENDS; do
  [[ $backend != pg || -n $PG_STARTED ]] || pg_start
  for n in "$@"; do run_one "$backend" "$n"; done
done
