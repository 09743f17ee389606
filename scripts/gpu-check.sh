#!/usr/bin/env bash
# Prepares the GPU verification of the device layer. On a machine with the CUDA toolkit, it builds
# the gpu-labelled tests and the device benchmarks (Release, KVACTOR_ENABLE_CUDA=ON, in
# build/gpu) and packs them with the shared libraries they need and a runner into .device/
# (git-ignored). Then, on the GPU machine (this one, or another one with an NVIDIA driver: copy
# .device/ there), run the runner:
#
#   bash scripts/gpu-check.sh     # where the CUDA toolkit is
#   bash .device/run.sh           # on the GPU machine
#
# .device/run.sh runs every packed test binary (the gpu-labelled ones) and the three benchmarks
# (full mode) under one time budget (KVACTOR_GPU_BUDGET_S, default 420 s), writes tests.log,
# bench.jsonl, bench.err and summary.txt into $OUT if set, else .device/out, and prints the
# summary and the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=build/gpu
pack=.device

tests=(test_gpu_runtime test_gpu_tensor test_gpu_kernels test_gpu_compression test_gpu_optimizer
  test_device_store)
benches=(bench_device_reduce bench_device_staging bench_device_quantize)

if [[ ! -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  echo "gpu-check: nvcc not found (CUDA toolkit needed to build the device layer)" >&2
  exit 1
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVACTOR_ENABLE_CUDA=ON \
  -DKVACTOR_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${tests[@]}" "${benches[@]}"

rm -rf "$pack"
mkdir -p "$pack/lib"
for t in "${tests[@]}"; do cp "$(find "$build/tests" -name "$t" -type f | head -1)" "$pack/"; done
for b in "${benches[@]}"; do cp "$build/bench/$b" "$pack/"; done

# Shared libraries the binaries need beyond the C/C++ runtime (the GPU machine has its own
# glibc, libstdc++ and NVIDIA driver; the CUDA runtime is linked statically).
for f in "$pack"/test_* "$pack"/bench_device_*; do
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

cat >"$pack/run.sh" <<'RUN'
#!/usr/bin/env bash
# Written by scripts/gpu-check.sh. Runs the gpu tests and the device benchmarks on a GPU machine.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
budget=${KVACTOR_GPU_BUDGET_S:-420}
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
limit() {  # min(wanted, time left), at least 10 s
  local l; l=$(left); [[ $l -gt $1 ]] && l=$1; [[ $l -lt 10 ]] && l=10; echo "$l"
}
summary=$out/summary.txt
: >"$summary"
{
  echo "== machine"; uname -a; nvidia-smi 2>&1 || echo "nvidia-smi failed"
} >"$out/tests.log" 2>&1

failed=0
one=$out/.one.log
for t in "$here"/test_*; do
  name=$(basename "$t")
  timeout "$(limit 120)" "$t" --gtest_color=no >"$one" 2>&1
  rc=$?
  { echo "== $name (exit $rc)"; cat "$one"; } >>"$out/tests.log"
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
done
rm -f "$one"

: >"$out/bench.jsonl"
: >"$out/bench.err"
for b in bench_device_reduce bench_device_staging bench_device_quantize; do
  echo "== $b" >>"$out/bench.err"
  timeout "$(limit 120)" "$here/$b" >>"$out/bench.jsonl" 2>>"$out/bench.err"
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
