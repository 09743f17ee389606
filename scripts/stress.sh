#!/usr/bin/env bash
# Repeats the multi-process and store tests (label integration, which holds the loopback
# clusters, the launcher and the transport tests) N times under ASan+UBSan (LeakSanitizer on) and
# in Release, and prints how many runs and tests failed. Exits non-zero on any failure.
# usage: bash scripts/stress.sh N [extra ctest args, e.g. -R Dist]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
n=${1:?usage: stress.sh N [ctest args]}
shift
bash scripts/deps.sh
logs=build/stress
rm -rf "$logs"
mkdir -p "$logs"
total_failed_runs=0
for preset in asan release; do
  configure "$preset" -DKVACTOR_BUILD_TESTS=ON -DKVACTOR_BUILD_EXAMPLES=ON
  build "$preset"
  failed_runs=0
  failed_tests=0
  for i in $(seq 1 "$n"); do
    log=$logs/$preset-$i.log
    if ctest --preset "$preset" -L integration "$@" >"$log" 2>&1; then
      say "$preset run $i/$n: ok ($(sed -nE 's/.*tests failed out of ([0-9]+).*/\1/p' "$log") tests)"
      rm -f "$log"
    else
      failed_runs=$((failed_runs + 1))
      f=$(sed -nE 's/.* ([0-9]+) tests failed out of.*/\1/p' "$log")
      failed_tests=$((failed_tests + ${f:-1}))
      say "$preset run $i/$n: FAILED (log kept: $log)"
      sed -n '/The following tests FAILED/,$p' "$log" | head -n 20
    fi
  done
  say "stress $preset: $failed_runs of $n runs failed ($failed_tests failed tests)"
  total_failed_runs=$((total_failed_runs + failed_runs))
done
if ((total_failed_runs > 0)); then
  die "stress: $total_failed_runs failed runs; logs in $logs"
fi
say "stress: 0 failures in $n ASan and $n Release runs"
