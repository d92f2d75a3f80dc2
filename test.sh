#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs what the tests need, then runs them.
# Needs only the Rust toolchain and Python (for ptxas, from the PyPI wheel nvidia-cuda-nvcc-cu12,
# which validates every emitted PTX kernel and needs no GPU).
#   ./test.sh         the whole suite (what CI runs)
#   ./test.sh quick   the development tier: every test with a tenth of the random cases
#                     (SSMC_QUICK=1), no examples and no cuda-feature build
set -euo pipefail
tier=${1:-full}
case "$tier" in full|quick) ;; *) echo "usage: ./test.sh [quick]" >&2; exit 2 ;; esac
cd "$(dirname "$0")"
if [ -z "${SSMC_PTXAS:-}" ]; then
  python3 -m pip install --quiet --disable-pip-version-check "nvidia-cuda-nvcc-cu12==12.9.86" 2>&1 | grep -v "WARNING: Running pip as" || true
  SSMC_PTXAS="$(python3 -c "import nvidia.cuda_nvcc, os; print(os.path.join(list(nvidia.cuda_nvcc.__path__)[0], 'bin', 'ptxas'))")"
  export SSMC_PTXAS
fi
"$SSMC_PTXAS" --version | tail -1
if [ "$tier" = quick ]; then
  SSMC_QUICK=1 cargo test --workspace --locked
  exit 0
fi
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
# the ssm! variants example: each layer the same graph as its .ssm file, the CPU JIT against the oracle
# (built above with the workspace's features; `cargo run --example` alone would unify features
# for one package and rebuild every crate)
./target/debug/examples/variants
# the cuda runtime without a GPU: clean errors, no panics (cudarc loads the driver lazily); with
# --workspace the features stay those of the build above, so only the crates with `cuda` rebuild
cargo test --locked --workspace --features ssmc/cuda --test cuda_errors --test oracle_cuda
