# kvactor_cuda_runtime(HINT_DIR): defines the imported target kvactor::cudart_static, the static
# CUDA runtime with the system libraries it needs, and KVACTOR_CUDA_INCLUDE_DIR. Used by the
# build (device/) and by the installed package config, so both find the runtime the same way.
#
# Why not find_package(CUDAToolkit): the FindCUDAToolkit module of Debian 12's CMake 3.25.1 sets
# a property on CUDA::nvToolsExt without checking that the target exists whenever the project's
# cmake_minimum_required is 3.25 or later; CUDA 13 ships no nvToolsExt, so configure fails. The
# static runtime is one archive at a known place in the toolkit, so we find it ourselves.
function(kvactor_cuda_runtime hint_dir)
  if(TARGET kvactor::cudart_static)
    set(KVACTOR_CUDA_RUNTIME_FOUND TRUE PARENT_SCOPE)
    return()
  endif()
  set(roots "${hint_dir}")
  foreach(var CUDAToolkit_ROOT CUDA_PATH CUDA_HOME)
    if(DEFINED ENV{${var}})
      list(APPEND roots "$ENV{${var}}")
    endif()
  endforeach()
  list(APPEND roots /usr/local/cuda /usr)
  find_library(KVACTOR_CUDART_STATIC NAMES cudart_static
    HINTS ${roots} PATH_SUFFIXES lib64 lib targets/x86_64-linux/lib lib/x86_64-linux-gnu
    NO_DEFAULT_PATH)
  find_path(KVACTOR_CUDA_INCLUDE_DIR NAMES cuda_runtime_api.h
    HINTS ${roots} PATH_SUFFIXES include targets/x86_64-linux/include NO_DEFAULT_PATH)
  mark_as_advanced(KVACTOR_CUDART_STATIC KVACTOR_CUDA_INCLUDE_DIR)
  if(NOT KVACTOR_CUDART_STATIC OR NOT KVACTOR_CUDA_INCLUDE_DIR)
    set(KVACTOR_CUDA_RUNTIME_FOUND FALSE PARENT_SCOPE)
    return()
  endif()
  find_package(Threads REQUIRED)
  # GLOBAL: every directory (and every find_package(kvactor) of a consumer) sees the one target.
  add_library(kvactor::cudart_static STATIC IMPORTED GLOBAL)
  set_target_properties(kvactor::cudart_static PROPERTIES
    IMPORTED_LOCATION "${KVACTOR_CUDART_STATIC}"
    INTERFACE_INCLUDE_DIRECTORIES "${KVACTOR_CUDA_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};rt")
  set(KVACTOR_CUDA_RUNTIME_FOUND TRUE PARENT_SCOPE)
endfunction()
