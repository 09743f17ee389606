# Installs the build tree into a scratch prefix, then configures, builds and runs the consumer
# project against it. Invoked by CTest with -DBUILD_DIR, -DSOURCE_DIR, -DWORK_DIR.
#
# Both the consumer and a configure of kvactor itself run against an unpatched copy of this
# CMake's FindCUDAToolkit module (Debian 12's 3.25.1 copy fails with CUDA 13 for projects that
# require CMake 3.25; some machines carry a patched copy that hides it), so a find_package of
# the CUDA toolkit slipping back into either fails here as it would on a stock machine.
file(REMOVE_RECURSE "${WORK_DIR}")
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(stock "${WORK_DIR}/stock-modules")
file(READ "${CMAKE_ROOT}/Modules/FindCUDAToolkit.cmake" module)
string(REPLACE "if(TARGET CUDA::nvToolsExt AND CMAKE_MINIMUM_REQUIRED_VERSION"
               "if(CMAKE_MINIMUM_REQUIRED_VERSION" module "${module}")
string(REPLACE "\${CMAKE_CURRENT_LIST_DIR}/FindPackageHandleStandardArgs.cmake"
               "FindPackageHandleStandardArgs" module "${module}")
file(WRITE "${stock}/FindCUDAToolkit.cmake" "${module}")

# The copy has teeth: where the toolkit has no nvToolsExt (CUDA 13), a 3.25 project that calls
# find_package(CUDAToolkit) must fail against it.
file(GLOB nvtools /usr/local/cuda/lib64/libnvToolsExt*)
if(EXISTS /usr/local/cuda/bin/nvcc AND NOT nvtools)
  file(WRITE "${WORK_DIR}/probe/CMakeLists.txt"
       "cmake_minimum_required(VERSION 3.25)\nproject(probe LANGUAGES NONE)\n"
       "find_package(CUDAToolkit REQUIRED)\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${WORK_DIR}/probe" -B "${WORK_DIR}/probe/build"
                          "-DCMAKE_MODULE_PATH=${stock}" -DCUDAToolkit_ROOT=/usr/local/cuda
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "nvToolsExt")
    message(FATAL_ERROR "the stock FindCUDAToolkit copy did not fail as Debian's does:\n${err}")
  endif()
  message(STATUS "stock FindCUDAToolkit copy fails for a plain 3.25 project, as expected")
endif()

# kvactor itself configures against the stock module (tests, benchmarks, examples off: quick).
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/self" -G Ninja
     "-DCMAKE_MODULE_PATH=${stock}" -DKVACTOR_BUILD_TESTS=OFF -DKVACTOR_BUILD_BENCH=OFF
     -DKVACTOR_BUILD_EXAMPLES=OFF "-DKVACTOR_ENABLE_CUDA=${ENABLE_CUDA}")

step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
# Dependencies from where the build found them (e.g. a ThreadSanitizer build of CAF).
if(EXTRA_PREFIX)
  set(ENV{CMAKE_PREFIX_PATH} "${EXTRA_PREFIX}")
endif()
# A sanitized kvactor needs a sanitized consumer to link.
set(flags "")
if(SANITIZE)
  set(flags "-fsanitize=${SANITIZE}")
endif()
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build" -G Ninja
     -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix"
     "-DCMAKE_MODULE_PATH=${stock}"
     "-DCMAKE_CXX_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
step("${WORK_DIR}/build/consumer")
if(NOT EXISTS "${WORK_DIR}/prefix/include/kvactor/kvstore.hpp")
  message(FATAL_ERROR "kvactor/kvstore.hpp was not installed under include/kvactor/")
endif()
# Only the API is installed: the plumbing (device kernels, transport, protocol, process
# spawning) stays in the build tree, so no user program can come to depend on it.
file(GLOB_RECURSE installed RELATIVE "${WORK_DIR}/prefix/include" "${WORK_DIR}/prefix/include/*")
foreach(h IN LISTS installed)
  if(h MATCHES "^kvactor/(detail|net|serialization)/")
    message(FATAL_ERROR "an internal header was installed: include/${h}")
  endif()
endforeach()
