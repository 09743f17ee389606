# One fuzz smoke run (ctest -L fuzz): copies the committed corpus to a scratch directory (the
# fuzzer adds what it finds to its first corpus directory; the source tree stays untouched),
# then fuzzes for a few seconds, replaying the regression inputs as well. libFuzzer exits
# non-zero on a crash, a leak, a timeout or a failed check, and so does this script.
# -D FUZZER=... CORPUS=... REGRESSIONS=... SCRATCH=...
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH}/corpus ${SCRATCH}/artifacts)
file(GLOB seeds ${CORPUS}/*)
if(NOT seeds)
  message(FATAL_ERROR "no seeds in ${CORPUS}: run kvactor_fuzz_make_seeds (see make_seeds.cpp)")
endif()
file(COPY ${seeds} DESTINATION ${SCRATCH}/corpus)
set(dirs ${SCRATCH}/corpus)
if(IS_DIRECTORY ${REGRESSIONS})
  list(APPEND dirs ${REGRESSIONS})
endif()
execute_process(
  COMMAND ${FUZZER} -max_total_time=5 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix=${SCRATCH}/artifacts/ ${dirs}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the input is under ${SCRATCH}/artifacts")
endif()
