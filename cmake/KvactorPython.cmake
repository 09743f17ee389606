# Decides whether the Python binding (python/) is built: KVACTOR_PYTHON, from the cache option
# KVACTOR_BUILD_PYTHON = AUTO (the default: built when Python 3 with its headers, NumPy and
# pybind11 are found), ON (fails without them) or OFF. Prints "kvactor: Python binding ON|OFF"
# and why.
#
# The interpreter: /usr/bin/python3 when it exists and Python3_EXECUTABLE is not given, so a
# Debian machine builds for (and tests with) the interpreter its python3-* packages serve,
# whatever python3 comes first on PATH (a pyenv shim, a venv). -DPython3_EXECUTABLE=... picks
# another.
#
# Sanitizer and fuzz builds leave it out: an extension module built with a sanitizer only
# loads into an interpreter that has the sanitizer's runtime preloaded
# (LD_PRELOAD=$(gcc -print-file-name=libasan.so)), which CTest's plain python3 has not.
set(KVACTOR_BUILD_PYTHON AUTO CACHE STRING
    "Build the Python binding: AUTO (when Python 3, NumPy and pybind11 are found), ON or OFF")
set_property(CACHE KVACTOR_BUILD_PYTHON PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${KVACTOR_BUILD_PYTHON}" _kvactor_py_choice)
if(_kvactor_py_choice MATCHES "^(ON|YES|TRUE|1)$")
  set(_kvactor_py_choice ON)
elseif(_kvactor_py_choice MATCHES "^(OFF|NO|FALSE|0)$")
  set(_kvactor_py_choice OFF)
elseif(_kvactor_py_choice STREQUAL "")
  set(_kvactor_py_choice AUTO)
elseif(NOT _kvactor_py_choice STREQUAL "AUTO")
  message(FATAL_ERROR "KVACTOR_BUILD_PYTHON is '${KVACTOR_BUILD_PYTHON}'; use AUTO, ON or OFF")
endif()

set(KVACTOR_PYTHON OFF)
set(_kvactor_py_why "")
if(_kvactor_py_choice STREQUAL "OFF")
  set(_kvactor_py_why "KVACTOR_BUILD_PYTHON=OFF")
elseif(KVACTOR_SANITIZE OR KVACTOR_FUZZ)
  set(_kvactor_py_why "a sanitizer build: the module would need the sanitizer runtime preloaded "
                      "into python3")
else()
  if(NOT Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
    set(Python3_EXECUTABLE /usr/bin/python3 CACHE FILEPATH "The Python 3 interpreter")
  endif()
  # 3.10: kvactor.Future is a CPython type that Python code may not instantiate
  # (Py_TPFLAGS_DISALLOW_INSTANTIATION, python/src/futures.cpp).
  find_package(Python3 3.10 COMPONENTS Interpreter Development.Module)
  if(NOT Python3_FOUND)
    set(_kvactor_py_why
        "no Python 3.10 or newer with its headers (Debian: python3-dev)")
  else()
    find_package(pybind11 2.6 CONFIG QUIET)
    execute_process(COMMAND ${Python3_EXECUTABLE} -c "import numpy"
                    RESULT_VARIABLE _kvactor_numpy_rc OUTPUT_QUIET ERROR_QUIET)
    if(NOT pybind11_FOUND)
      set(_kvactor_py_why "pybind11 not found (Debian: pybind11-dev)")
    elseif(NOT _kvactor_numpy_rc EQUAL 0)
      set(_kvactor_py_why "${Python3_EXECUTABLE} has no NumPy (Debian: python3-numpy)")
    else()
      set(KVACTOR_PYTHON ON)
      set(_kvactor_py_why "${Python3_EXECUTABLE}, Python ${Python3_VERSION}, pybind11 ${pybind11_VERSION}")
    endif()
  endif()
endif()
if(_kvactor_py_choice STREQUAL "ON" AND NOT KVACTOR_PYTHON)
  message(FATAL_ERROR "KVACTOR_BUILD_PYTHON=ON but the binding cannot be built: ${_kvactor_py_why}")
endif()
message(STATUS "kvactor: Python binding ${KVACTOR_PYTHON} (${_kvactor_py_why})")
