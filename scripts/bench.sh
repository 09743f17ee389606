#!/usr/bin/env bash
# Builds the benchmarks in Release and runs each; every line printed is one JSON figure.
# Pass --quick for a smoke run of a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release -DKVACTOR_BUILD_BENCH=ON >/dev/null
cmake --build --preset release --target bench_local_reduce bench_small_ops bench_compression \
  bench_optimizer bench_dist kvactor-server bench_device_reduce bench_device_staging \
  bench_device_quantize
# The device benchmarks print nothing (a note on stderr) without a GPU.
for b in bench_local_reduce bench_small_ops bench_compression bench_optimizer bench_dist \
  bench_device_reduce bench_device_staging bench_device_quantize; do
  ./build/release/bench/"$b" "$@"
done
# The timeline's cost (KVACTOR_TIMELINE on against off, same run).
./build/release/bench/bench_dist --timeline "$@"
# The Python binding's cost against C++ (when the binding is built).
if [[ -d build/release/python/kvactor ]]; then
  cmake --build --preset release --target kvactor_python kvactor-launch
  PYTHONPATH=build/release/python /usr/bin/python3 bench/python_overhead.py "$@"
fi
