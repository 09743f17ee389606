#!/usr/bin/env bash
# clang-tidy-14 with the repository's .clang-tidy over the library's own sources (not tests,
# benchmarks or examples), against the release build's compile database; every finding is an
# error. CI runs it from scripts/test.sh. Pass file paths to check only those.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
tidy=$(command -v clang-tidy-14 || true)
[[ -n $tidy ]] || die "clang-tidy-14 is missing (bash scripts/deps.sh installs it)"
db=build/release/compile_commands.json
[[ -f $db ]] || configure release
if (($# > 0)); then
  files=("$@")
else
  # What the build compiles (so a build without CUDA skips device/src/cuda/), library only.
  mapfile -t files < <(sed -n 's/^ *"file": "\(.*\.cpp\)",\{0,1\}$/\1/p' "$db" |
    grep -E "^$PWD/(core|trace|device|serialization|net|actors|process|tools|python)/" | sort -u)
fi
say "clang-tidy: ${#files[@]} files on $(nproc) cores"
log=build/tidy.log
if ! printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 4 "$tidy" -p build/release --quiet >"$log" 2>&1; then
  grep -E '(warning|error):' "$log" | sort -u >&2 || tail -n 40 "$log" >&2
  die "clang-tidy: findings above (full output in $log)"
fi
say "clang-tidy: no findings"
