#!/usr/bin/env bash
# The README's demo command: installs what it needs, builds the library, the tools and the
# example (preset demo, in build/demo: it never touches what the tests build in build/release),
# and trains the example model through the store twice: in one process, then on a local
# cluster of 2 servers and 2 workers (dist_sync) on loopback. Fails if either run misses the
# accuracy target. Arguments go to the training program (see kvactor-train --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
bash scripts/deps.sh
configure demo
build demo kvactor-train kvactor-launch kvactor-server
say "demo 1/2: one process, local store"
./build/demo/examples/kvactor-train "$@"
say "demo 2/2: local cluster, 2 servers x 2 workers, dist_sync"
./build/demo/bin/kvactor-launch -n 2 -s 2 -- ./build/demo/examples/kvactor-train --store dist_sync "$@"
say "demo: both runs reached their target"
