#!/usr/bin/env bash
# Fuzzes every decoder of bytes from outside (tests/fuzz, docs/FUZZING.md) for SECONDS per
# target, two targets at a time, each on a scratch copy of its committed corpus plus its
# regression inputs. Prints per target the executions, runs per second and findings (crashes,
# leaks, timeouts, out-of-memory), copies each finding's input to build/fuzz/findings/ and
# exits non-zero when there is one.
#   bash scripts/fuzz.sh [SECONDS]      (default 60; 150 or more for a release check)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

secs=${1:-60}
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "usage: bash scripts/fuzz.sh [SECONDS] (got '$secs')"

# clang-16 and its sanitizer/fuzzer runtimes; deps.sh installs what is missing (as root).
if ! command -v clang++-16 >/dev/null ||
  [[ ! -e /usr/lib/llvm-16/lib/clang/16/lib/linux/libclang_rt.fuzzer-x86_64.a ]]; then
  bash scripts/deps.sh
fi
mkdir -p build
say "configuring (fuzz preset: clang-16, libFuzzer, ASan, UBSan)"
quietly build/configure-fuzz.log cmake --preset fuzz
build fuzz

bin=build/fuzz/tests/fuzz
work=build/fuzz/fuzzing
findings=build/fuzz/findings
rm -rf "$work" "$findings"
mkdir -p "$work" "$findings"
targets=()
for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
((${#targets[@]})) || die "no corpora under tests/fuzz/corpus"

# fuzz_one TARGET: one libFuzzer run; its output goes to $work/TARGET/log, its exit status
# to $work/TARGET/rc, any finding's input to $work/TARGET/artifacts/.
fuzz_one() {
  local t=$1 dir=$work/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  local dirs=("$dir/corpus")
  [[ -d tests/fuzz/regressions/$t ]] && dirs+=("tests/fuzz/regressions/$t")
  local rc=0
  nice "$bin/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${dirs[@]}" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

say "fuzzing ${#targets[@]} targets for ${secs} s each, 2 at a time (logs in $work/)"
running=0
for t in "${targets[@]}"; do
  [[ -x $bin/fuzz_$t ]] || die "no fuzzer $bin/fuzz_$t for the corpus tests/fuzz/corpus/$t"
  fuzz_one "$t" &
  running=$((running + 1))
  if ((running == 2)); then
    wait -n
    running=$((running - 1))
  fi
done
wait

# One line per target; a finding is any artifact, or a run that failed without leaving one.
final_stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\\1/p" "$2" | tail -n 1; }
count() { find "$work/$1/artifacts" -name "$2-*" | wc -l; }
failed=0
printf '%-18s %12s %8s %8s %6s %9s %5s\n' target executions exec/s crashes leaks timeouts ooms
for t in "${targets[@]}"; do
  log=$work/$t/log
  execs=$(final_stat number_of_executed_units "$log")
  # Without final stats (a killed run), the last progress line "#N ..." still counts.
  [[ -n $execs ]] || execs=$(sed -nE 's/^#([0-9]+)\t.*/\1/p' "$log" | tail -n 1)
  rate=$(final_stat average_exec_per_sec "$log")
  crashes=$(count "$t" crash)
  leaks=$(count "$t" leak)
  timeouts=$(count "$t" timeout)
  ooms=$(count "$t" oom)
  printf '%-18s %12s %8s %8s %6s %9s %5s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$leaks" \
    "$timeouts" "$ooms"
  for a in "$work/$t"/artifacts/*; do
    [[ -e $a ]] || continue
    cp "$a" "$findings/$t-$(basename "$a")"
    cp "$log" "$findings/$t.log"
    failed=1
  done
  if [[ $(cat "$work/$t/rc") != 0 ]] && ((crashes + leaks + timeouts + ooms == 0)); then
    echo "    $t: the fuzzer exited with status $(cat "$work/$t/rc") without a finding; see $log"
    cp "$log" "$findings/$t.log"
    failed=1
  fi
done
if ((failed)); then
  die "findings: inputs and logs in $findings/ (replay: $bin/fuzz_TARGET FILE)"
fi
say "fuzzing: no findings (${secs} s per target)"
