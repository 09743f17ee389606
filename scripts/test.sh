#!/usr/bin/env bash
# The README's test command (and CI's): installs what it needs, builds and runs every test
# suite in Release (the integration tests twice: the second time with two emulated CUDA
# devices), then again under AddressSanitizer + UndefinedBehaviorSanitizer, then the fuzz
# smoke: every libFuzzer target for a few seconds and its regression inputs (clang-16). Each
# stage prints how many tests ran, passed and were skipped (and why); a stage that runs no
# test fails.
# KVACTOR_TEST_TSAN=1 adds a ThreadSanitizer run (against a TSan build of CAF that
# scripts/caf-tsan.sh makes once); KVACTOR_TEST_ASAN=0 skips the ASan run, KVACTOR_TEST_FUZZ=0
# the fuzz smoke; KVACTOR_ENABLE_CUDA=OFF builds without the CUDA layer. The house habits are
# checked too: the formatting first (scripts/check-format.sh), warnings as errors in the
# Release and ASan builds (KVACTOR_WERROR), clang-tidy after the Release tests
# (scripts/tidy.sh; KVACTOR_TEST_TIDY=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
bash scripts/deps.sh

# The options the tests need are forced here too, whatever an earlier configure left cached.
stage() {
  local preset=$1
  configure "$preset" -DKVACTOR_BUILD_TESTS=ON -DKVACTOR_BUILD_EXAMPLES=ON -DKVACTOR_WERROR=ON
  build "$preset"
  run_tests "$preset" "$preset"
}

bash scripts/check-format.sh
stage release
# The store tests again with two emulated CUDA devices present: the device store then keeps its
# keys on them, so every device-store test also runs the device code paths.
KVACTOR_EMULATE_CUDA=2 run_tests "integration tests on two emulated CUDA devices" release -L integration
if [[ ${KVACTOR_TEST_TIDY:-1} != 0 ]]; then bash scripts/tidy.sh; fi
if [[ ${KVACTOR_TEST_ASAN:-1} != 0 ]]; then stage asan; fi
if [[ ${KVACTOR_TEST_FUZZ:-1} != 0 ]]; then
  configure fuzz
  build fuzz
  run_tests "fuzz smoke (each target 5 s) and fuzz regressions" fuzz
fi
if [[ ${KVACTOR_TEST_TSAN:-0} != 0 ]]; then
  say "ThreadSanitizer build of CAF (once, about ten minutes)"
  bash scripts/caf-tsan.sh
  stage tsan
fi
say "all tests passed"
