#!/usr/bin/env bash
# Builds the benchmarks in Release and runs each; every line printed is one JSON figure.
# Pass --quick for a smoke run of a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release -DKVACTOR_BUILD_BENCH=ON >/dev/null
cmake --build --preset release --target bench_local_reduce bench_small_ops bench_compression \
  bench_optimizer bench_dist kvactor-server
for b in bench_local_reduce bench_small_ops bench_compression bench_optimizer bench_dist; do
  ./build/release/bench/"$b" "$@"
done
