#!/usr/bin/env bash
# Every test: the Rust crate's (`cargo test`; arguments go to cargo) and
# then the Python package's (python/test.sh: pytest, in a virtualenv it
# makes, with the native module built into it).
set -euo pipefail
cd "$(dirname "$0")"
cargo test "$@"
bash python/test.sh
