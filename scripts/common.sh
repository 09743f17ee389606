# Sourced by the scripts: progress lines, quiet steps that show their output only on failure,
# and the configure / build / test stages shared by demo.sh, test.sh and stress.sh.
# KVACTOR_ENABLE_CUDA (AUTO, ON, OFF) reaches CMake through the presets ($env{...}).

kv_start=$(date +%s)

# A progress line: "[kvactor 0:42] message" (minutes:seconds since the script started).
say() {
  local t=$(($(date +%s) - kv_start))
  printf '[kvactor %d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"
}

die() {
  say "FAILED: $*" >&2
  exit 1
}

# quietly LOG COMMAND...: runs COMMAND with its output in LOG; on failure prints the end of LOG.
quietly() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    echo "----- last lines of $log" >&2
    tail -n 60 "$log" >&2
    die "$* (full output in $log)"
  fi
}

# configure PRESET [cmake args]: quiet unless it fails; says whether CUDA is built.
configure() {
  local preset=$1
  shift
  mkdir -p build
  say "configuring ($preset preset, KVACTOR_ENABLE_CUDA=${KVACTOR_ENABLE_CUDA:-AUTO})"
  quietly "build/configure-$preset.log" cmake --preset "$preset" "$@"
  grep -h "kvactor: CUDA device layer" "build/configure-$preset.log" | sed 's/^-- /    /' || true
}

# build PRESET [targets]: ninja prints one line per step, which is the progress.
build() {
  local preset=$1
  shift
  say "building ($preset${*:+: $*})"
  local args=()
  (($#)) && args=(--target "$@")
  cmake --build --preset "$preset" -j "$(nproc)" "${args[@]}" || die "build ($preset)"
}

# Prints the output lines of one test from ctest's LastTest.log that say why it was skipped.
skip_reason() {
  local log=$1 name=$2
  awk -v name="$name" '
    $0 ~ "^[0-9]+/[0-9]+ Test: " { inside = (substr($0, index($0, ": ") + 2) == name); next }
    !inside { next }
    /: Skipped$/ { getline; print; exit }  # GoogleTest: the reason is the next line
    tolower($0) ~ /skip/ && $0 !~ /Skip regular expression/ { print; exit }' "$log" |
    sed -E 's/^(-- )?/      /'
}

# run_tests TITLE PRESET [ctest args]: runs the tests, then prints how many ran, passed and were
# skipped (skips grouped: the gpu label by count, others by name with their reason). Fails when a
# test fails or when no test ran (noTestsAction in the presets).
run_tests() {
  local title=$1 preset=$2
  shift 2
  local dir log
  dir=build/$preset  # every preset builds in build/<preset name>
  log=$(mktemp)
  say "testing: $title"
  local rc=0
  ctest --preset "$preset" "$@" 2>&1 | tee "$log" || rc=$?
  local total passed skipped failed
  total=$(sed -nE 's/.* tests failed out of ([0-9]+).*/\1/p' "$log" | tail -n 1)
  failed=$(sed -nE 's/.* ([0-9]+) tests failed out of.*/\1/p' "$log" | tail -n 1)
  skipped=$(grep -cE $'^\t[0-9]+ - .* \\(Skipped\\)$' "$log" || true)
  if ((rc != 0)) || [[ -z $total ]] || ((failed != 0)); then
    rm -f "$log"
    die "$title: ctest failed (exit $rc); see the output above"
  fi
  passed=$((total - skipped))
  # Kept before `ctest -N` below, which rewrites LastTest.log.
  cp "$dir/Testing/Temporary/LastTest.log" "$log.last"
  local gpu_names others=() gpu_skipped=0
  gpu_names=$(ctest --preset "$preset" -N -L '^gpu$' 2>/dev/null | sed -nE 's/^ *Test +#[0-9]+: (.*)$/\1/p')
  while IFS= read -r name; do
    [[ -z $name ]] && continue
    if grep -qxF -- "$name" <<<"$gpu_names"; then
      gpu_skipped=$((gpu_skipped + 1))
    else
      others+=("$name")
    fi
  done < <(sed -nE 's/^\t[0-9]+ - (.*) \(Skipped\)$/\1/p' "$log")
  say "$title: $total tests ran: $passed passed, $skipped skipped, $failed failed"
  if ((gpu_skipped > 0)); then
    echo "    skipped: $gpu_skipped gpu-labelled tests (no CUDA device here)"
  fi
  for name in "${others[@]}"; do
    echo "    skipped: $name"
    skip_reason "$log.last" "$name"
  done
  rm -f "$log" "$log.last"
}
