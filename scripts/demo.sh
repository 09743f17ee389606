#!/usr/bin/env bash
# The README's demo command: installs what it needs, builds, and trains the example model
# through the store. Exits non-zero if anything fails or the model misses its target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release -DKVACTOR_BUILD_TESTS=OFF -DKVACTOR_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target kvactor-train
./build/release/examples/kvactor-train "$@"
