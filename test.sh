#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs what the tests need, then runs them.
# Needs only the Rust toolchain (and, once the PTX backend lands, Python for ptxas).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
