#!/usr/bin/env bash
# Every test: the Rust crate's (`cargo test`; arguments go to cargo) and
# then the Python package's (python/test.sh: pytest, in a virtualenv it
# makes, with the native module built into it).
set -euo pipefail
cd "$(dirname "$0")"
# The Python tests run even when a Rust test fails: one run shows every failure.
rust=0
cargo test "$@" || rust=$?
bash python/test.sh
exit "$rust"
