#!/usr/bin/env bash
# Prepares the GPU verification of the device layer. On a machine with the CUDA toolkit, it builds
# (Release, KVACTOR_ENABLE_CUDA=ON, in build/gpu) the gpu-labelled tests, the integration tests
# of stores with device values, the cluster tests with device values (with kvactor-server and
# their worker programs), examples/device.cpp and the device benchmarks, and packs them with
# the shared libraries they need and a runner into .device/ (git-ignored). Then, on the GPU
# machine (this one, or another one with an NVIDIA driver: copy .device/ there), run the runner:
#
#   bash scripts/gpu-check.sh     # where the CUDA toolkit is
#   bash .device/run.sh           # on the GPU machine
#
# .device/run.sh runs every packed test (each under its filter), the example and the four
# benchmarks (full mode) under one time budget (KVACTOR_GPU_BUDGET_S, default 420 s), writes
# tests.log, bench.jsonl, bench.err and summary.txt into $OUT if set, else .device/out, and
# prints the summary and the figures. The binaries keep their build-tree paths under
# .device/tree/ (the cluster tests start kvactor-server and their worker programs by the paths
# compiled into them); the runner links <this checkout>/build/gpu there when that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=build/gpu
pack=.device

# test binary:gtest filter ("*": all), in the order they run.
tests=(test_gpu_runtime:* test_gpu_tensor:* test_gpu_kernels:* test_gpu_compression:*
  test_gpu_optimizer:* test_device_store:* test_pull_rules:* test_custom_store:*
  test_sparse_precision:* test_compression_sparse:* test_row_sparse_device:*
  test_row_sparse_output:* "test_dist:DistSyncDevice.*:DistAsyncDevice.*"
  test_dist_sparse_device:* test_dist_sparse_output:* test_dist_rules:*)
# Programs the cluster tests and the runner start.
programs=(kvactor-server dist_node sparse_device_node sparse_output_node rules_node
  kvactor-example-device)
benches=(bench_device_reduce bench_device_staging bench_device_quantize bench_device_store)

if [[ ! -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  echo "gpu-check: nvcc not found (CUDA toolkit needed to build the device layer)" >&2
  exit 1
fi
targets=("${programs[@]}" "${benches[@]}")
for t in "${tests[@]}"; do targets+=("${t%%:*}"); done
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVACTOR_ENABLE_CUDA=ON \
  -DKVACTOR_BUILD_TESTS=ON -DKVACTOR_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

rm -rf "$pack"
mkdir -p "$pack/lib" "$pack/tree"
for t in "${targets[@]}"; do
  f=$(find "$build" -name "$t" -type f -perm -u+x | head -1)
  [[ -n $f ]] || { echo "gpu-check: $t was not built" >&2; exit 1; }
  mkdir -p "$pack/tree/$(dirname "$f")"
  cp "$f" "$pack/tree/$f"
  strip --strip-debug "$pack/tree/$f"
done
printf '%s\n' "${tests[@]}" >"$pack/tests.txt"
echo "$root" >"$pack/root.txt"

# Shared libraries the binaries need beyond the C/C++ runtime (the GPU machine has its own
# glibc, libstdc++ and NVIDIA driver; the CUDA runtime is linked statically).
find "$pack/tree" -type f | while read -r f; do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | \
      libgcc_s.so* | libcuda.so* | libnvidia*) ;;
    *) cp -L "$lib" "$pack/lib/" ;;
  esac
done
# CAF's libraries in any case (a few MB), for gpu tests that run stores.
cp -P /usr/lib/x86_64-linux-gnu/libcaf_*.so* "$pack/lib/" 2>/dev/null || true
# The binaries share most of their bytes (the static kvactor libraries, the CUDA kernels): one
# xz stream with a 64 MiB dictionary keeps the pack small enough to copy around (~1/10).
tar -C "$pack" -cf - tree | xz -9 >"$pack/tree.tar.xz"
rm -rf "$pack/tree"

cat >"$pack/run.sh" <<'RUN'
#!/usr/bin/env bash
# Written by scripts/gpu-check.sh. Runs the packed tests, examples/device.cpp and the device
# benchmarks on a GPU machine.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ ! -d $here/tree ]]; then
  tar -C "$here" -xJf "$here/tree.tar.xz" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$here/tree.tar.xz" "$here" || { echo "run.sh: cannot unpack tree.tar.xz" >&2; exit 1; }
fi
# The cluster tests start programs by their build-tree paths: make those paths lead here.
root=$(cat "$here/root.txt")
if [[ ! -e $root/build/gpu ]]; then
  mkdir -p "$root/build" && ln -s "$here/tree/build/gpu" "$root/build/gpu"
fi
bin() { find "$here/tree" -name "$1" -type f | head -1; }
budget=${KVACTOR_GPU_BUDGET_S:-420}
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
limit() {  # min(wanted, time left), at least 10 s
  local l; l=$(left); [[ $l -gt $1 ]] && l=$1; [[ $l -lt 10 ]] && l=10; echo "$l"
}
summary=$out/summary.txt
{
  echo "machine: $(uname -srm)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 |
    sed 's/^/gpu: /'
  nvidia-smi 2>/dev/null | grep -o "CUDA Version: [0-9.]*" | sed 's/^/driver /'
} >"$summary"
{ echo "== machine"; uname -a; nvidia-smi 2>&1 || echo "nvidia-smi failed"; } >"$out/tests.log" 2>&1

failed=0
one=$out/.one.log
while IFS= read -r line; do
  name=${line%%:*}
  filter=${line#*:}
  timeout "$(limit 120)" "$(bin "$name")" --gtest_color=no "--gtest_filter=$filter" >"$one" 2>&1
  rc=$?
  { echo "== $name $filter (exit $rc)"; cat "$one"; } >>"$out/tests.log"
  # gtest's closing lines: "[  PASSED  ] N tests.", "[  SKIPPED ] N tests", "[  FAILED  ] N tests"
  counts=$(grep -E "^\[  (PASSED|SKIPPED|FAILED) +\] [0-9]+ tests?" "$one" | sed -E 's/^\[ +([A-Z]+) +\] ([0-9]+).*/\2 \1/' |
    tr '\n' ' ')
  if [[ $rc -eq 0 ]]; then
    echo "PASS $name: $counts" >>"$summary"
  else
    failed=$((failed + 1))
    echo "FAIL $name (exit $rc$([[ $rc -eq 124 ]] && echo ', timed out')): $counts" >>"$summary"
    grep -E "^\[  FAILED  \] [A-Za-z]" "$one" | grep -v " ms)$" | sed 's/^/    /' >>"$summary"
  fi
  grep -E "^\[  SKIPPED \] [A-Za-z]" "$one" | grep -v " ms)$" | sed 's/^\[  SKIPPED \]/    skipped:/' \
    >>"$summary"
done <"$here/tests.txt"
rm -f "$one"

timeout "$(limit 60)" "$(bin kvactor-example-device)" >"$out/example.log" 2>&1
rc=$?
{ echo "== kvactor-example-device (exit $rc)"; cat "$out/example.log"; } >>"$out/tests.log"
if [[ $rc -eq 0 ]] && grep -q ": OK$" "$out/example.log"; then
  echo "PASS kvactor-example-device: $(tail -1 "$out/example.log")" >>"$summary"
else
  failed=$((failed + 1))
  echo "FAIL kvactor-example-device (exit $rc)" >>"$summary"
fi
rm -f "$out/example.log"

: >"$out/bench.jsonl"
: >"$out/bench.err"
for b in bench_device_reduce bench_device_staging bench_device_quantize bench_device_store; do
  echo "== $b" >>"$out/bench.err"
  timeout "$(limit 120)" "$(bin "$b")" >>"$out/bench.jsonl" 2>>"$out/bench.err"
  rc=$?
  echo "$([[ $rc -eq 0 ]] && echo PASS || echo FAIL) $b (exit $rc)" >>"$summary"
  [[ $rc -eq 0 ]] || failed=$((failed + 1))
done
echo "elapsed $(($(date +%s) - start)) s" >>"$summary"

echo "===== summary"
cat "$summary"
echo "===== figures (bench, case, value unit, ratio vs same-run limit, target)"
if command -v python3 >/dev/null; then
  python3 - "$out/bench.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        f = json.loads(line)
    except ValueError:
        print("unparsable:", line.strip()); continue
    r, t = f.get("ratio"), f.get("target")
    mark = "" if t is None or r is None else ("  ok" if r >= t else "  MISSED")
    print(f'{f["bench"]:16} {f["case"]:34} {f["value"]:9.1f} {f["unit"]:5} '
          f'ratio {r if r is not None else "-"} target {t if t is not None else "-"}{mark}')
PY
else
  cat "$out/bench.jsonl"
fi
exit $((failed > 0))
RUN
chmod +x "$pack/run.sh"

du -sh "$pack"
echo "gpu-check: packed $(ls "$pack" | wc -l) entries into $root/$pack"
echo "next, on the GPU machine (this one, or another one with an NVIDIA driver: copy $pack/ there): bash $pack/run.sh"
