#!/usr/bin/env bash
# The Python package's tests: builds the native module into a virtualenv
# (target/py-sdk, made on first use with the pinned tools of
# requirements-test.txt) and runs pytest. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-sdk
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements-test.txt; then
  echo "error: could not install python/requirements-test.txt into $venv" >&2
  exit 1
fi
echo "== python: building the native module (maturin develop) into $venv"
VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH" timeout 2400 "$venv/bin/maturin" develop --quiet -m python/Cargo.toml
echo "== python: pytest"
cd python
exec timeout --kill-after=10 1800 "../$venv/bin/python" -m pytest -q --timeout=300 "$@"
