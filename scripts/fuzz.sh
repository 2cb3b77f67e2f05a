#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time, starting from fuzz/seeds/<target>.
#
#   scripts/fuzz.sh                     # all targets, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh car_decoder
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`); libFuzzer needs nightly features, which
# RUSTC_BOOTSTRAP=1 enables on the stable toolchain. The corpus grows in fuzz/corpus/<target>
# (git-ignored); crashes land in fuzz/artifacts/<target>: copy a minimised one into
# fuzz/regressions/<target>/ and it is replayed by every later run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz not found; installing it" >&2
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo fuzz list)
fi

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t"
  dict=()
  [[ -f "dicts/$t.dict" ]] && dict=("-dict=dicts/$t.dict")
  echo "== $t (${SECONDS_EACH}s)"
  set +e
  cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
    -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    >"corpus/$t.log" 2>&1
  rc=$?
  set -e
  # libFuzzer is chatty: show the summary lines; the whole log stays in fuzz/corpus/<target>.log.
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus|==[0-9]+==|SUMMARY|thread .* panicked|Test unit written)' "corpus/$t.log" || true
  [[ $rc -eq 0 ]] || { echo "fuzz.sh: $t failed (exit $rc); log: fuzz/corpus/$t.log" >&2; exit 1; }
done
