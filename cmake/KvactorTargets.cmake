# Per-target defaults: kvactor never sets global compile flags, every target calls this.
function(kvactor_target_defaults tgt)
  target_compile_features(${tgt} PUBLIC cxx_std_17)
  set_target_properties(${tgt} PROPERTIES CXX_EXTENSIONS OFF POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${tgt} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(KVACTOR_WERROR)
    target_compile_options(${tgt} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  if(KVACTOR_SANITIZE)
    target_compile_options(${tgt} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${KVACTOR_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
    target_link_options(${tgt} PRIVATE -fsanitize=${KVACTOR_SANITIZE})
  endif()
  # The fuzz build (clang): coverage instrumentation for libFuzzer in every target, so that it
  # sees the decoders' branches, plus ASan and UBSan so that memory errors and UB are findings.
  # Only the fuzz targets themselves link the fuzzer runtime (-fsanitize=fuzzer, tests/fuzz).
  # Without use-after-return detection: the decoders reject by throwing, and ASan's fake
  # stacks then cost ~70% of every run (measured: 2.6k instead of 22k runs/s).
  if(KVACTOR_FUZZ)
    target_compile_options(${tgt} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -fsanitize-address-use-after-return=never>)
    target_link_options(${tgt} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# A library module: <dir>/include holds its API headers, installed as include/; <dir>/internal
# (where there is one) the headers that other modules, the tests and the benchmarks share but
# users never include (plumbing): on the include path in the build tree only, not installed.
function(kvactor_module tgt)
  cmake_parse_arguments(M "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${tgt} ${M_SOURCES})
  kvactor_target_defaults(${tgt})
  target_include_directories(${tgt} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/internal> $<INSTALL_INTERFACE:include>)
  target_link_libraries(${tgt} PUBLIC ${M_PUBLIC_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  install(TARGETS ${tgt} EXPORT kvactorTargets ARCHIVE DESTINATION lib LIBRARY DESTINATION lib)
  if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include)
    install(DIRECTORY include/ DESTINATION include)
  endif()
endfunction()

# An executable (test, benchmark, example, tool) with the same defaults.
function(kvactor_executable tgt)
  cmake_parse_arguments(E "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${tgt} ${E_SOURCES})
  kvactor_target_defaults(${tgt})
  target_link_libraries(${tgt} PRIVATE ${E_DEPS})
endfunction()
