#!/usr/bin/env bash
# Prints the path of a Garage binary (the reference S3-compatible server of the scale-out tests),
# building it once with `cargo install --locked` into a cache outside the clone (~11 min on 2 cores).
#   HYDRANT_CACHE   cache root (default ~/.cache/hydrant)
#   GARAGE_BIN      use this binary instead
set -euo pipefail
version=2.5.0
if [[ -n ${GARAGE_BIN:-} ]]; then echo "$GARAGE_BIN"; exit 0; fi
root=${HYDRANT_CACHE:-$HOME/.cache/hydrant}/garage-$version
bin=$root/bin/garage
if [[ ! -x $bin ]]; then
  echo "building garage $version into $root (once; ~11 min)" >&2
  CARGO_TARGET_DIR=$root/build cargo install --locked --quiet garage --version "$version" --root "$root" >&2
  rm -rf "$root/build"
fi
echo "$bin"
