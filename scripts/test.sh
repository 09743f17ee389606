#!/usr/bin/env bash
# The README's test command (and CI's): installs what it needs, builds and runs every test
# suite in Release (the integration tests twice: the second time with two emulated CUDA
# devices), then again under AddressSanitizer + UndefinedBehaviorSanitizer.
# KVACTOR_TEST_TSAN=1 adds a ThreadSanitizer run (against a TSan build of CAF that
# scripts/caf-tsan.sh makes once); KVACTOR_TEST_ASAN=0 skips the ASan run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)

run() {
  local preset=$1
  echo "=== kvactor: $preset build and tests ==="
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset"
}

run release
# The store tests again with two emulated CUDA devices present: the device store then keeps its
# keys on them, so every device-store test also runs the device code paths.
echo "=== kvactor: integration tests on two emulated CUDA devices ==="
KVACTOR_EMULATE_CUDA=2 ctest --preset release -L integration
if [[ ${KVACTOR_TEST_ASAN:-1} != 0 ]]; then run asan; fi
if [[ ${KVACTOR_TEST_TSAN:-0} != 0 ]]; then bash scripts/caf-tsan.sh && run tsan; fi
echo "=== kvactor: all tests passed ==="
