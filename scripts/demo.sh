#!/usr/bin/env bash
# The README's demo command: installs what it needs, builds, and trains the example model
# through the store twice: in one process, then on a local cluster of 2 servers and 2
# workers (dist_sync) on loopback. Fails if either run misses the accuracy target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release -DKVACTOR_BUILD_TESTS=OFF -DKVACTOR_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target kvactor-train kvactor-launch kvactor-server
echo "=== kvactor demo: one process, local store ==="
./build/release/examples/kvactor-train "$@"
echo "=== kvactor demo: local cluster, 2 servers x 2 workers, dist_sync ==="
./build/release/bin/kvactor-launch -n 2 -s 2 -- ./build/release/examples/kvactor-train --store dist_sync "$@"
