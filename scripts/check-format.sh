#!/usr/bin/env bash
# The formatting check (CI runs it from scripts/test.sh): every C++ and CUDA file git tracks
# must be as clang-format-14 writes it under .clang-format. With --fix, formats them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
fmt=$(command -v clang-format-14 || true)
[[ -n $fmt ]] || die "clang-format-14 is missing (bash scripts/deps.sh installs it)"
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cu' '*.cuh')
((${#files[@]} > 0)) || die "no source files found (is this a git checkout?)"
if [[ ${1:-} == --fix ]]; then
  "$fmt" -i "${files[@]}"
  say "format: ${#files[@]} files formatted"
  exit 0
fi
mkdir -p build
if ! "$fmt" --dry-run --Werror "${files[@]}" 2>build/format.log; then
  grep -E '^[^ ].*: error:' build/format.log | cut -d: -f1 | sort -u | sed 's/^/    /' >&2
  die "format: the files above are not clang-format-14's layout (bash scripts/check-format.sh --fix)"
fi
say "format: ${#files[@]} files as clang-format-14 writes them"
