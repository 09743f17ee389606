#!/usr/bin/env bash
# The README's demo command: installs what it needs, builds the library, the tools, the
# examples and the Python module (preset demo, in build/demo: it never touches what the tests
# build in build/release), and trains three times: the C++ example model through the store in
# one process, then on a local cluster of 2 servers and 2 workers (dist_sync) on loopback, then
# the PyTorch example (examples/python/train_digits.py: scikit-learn's digits, through
# kvactor.torch) on such a cluster. Fails if any run misses its accuracy target. Arguments go to
# the C++ training program (see kvactor-train --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
bash scripts/deps.sh
configure demo -DKVACTOR_BUILD_PYTHON=ON
build demo kvactor-train kvactor-launch kvactor-server kvactor_python
say "demo 1/3: one process, local store"
./build/demo/examples/kvactor-train "$@"
say "demo 2/3: local cluster, 2 servers x 2 workers, dist_sync"
./build/demo/bin/kvactor-launch -n 2 -s 2 -- ./build/demo/examples/kvactor-train --store dist_sync "$@"
say "demo 3/3: PyTorch (kvactor.torch), local cluster, 2 servers x 2 workers, dist_sync"
PYTHONPATH="$PWD/build/demo/python" \
  ./build/demo/bin/kvactor-launch -n 2 -s 2 -- /usr/bin/python3 examples/python/train_digits.py
say "demo: all three runs reached their target"
