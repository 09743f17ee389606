# Installs the python component of BUILD_DIR into WORK_DIR/prefix, then imports kvactor from
# PACKAGE_DIR there (and only there: -I ignores PYTHONPATH and the user site) and uses it.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --component python
                        --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed (${rc}):\n${out}\n${err}")
endif()
set(site "${WORK_DIR}/prefix/${PACKAGE_DIR}")
execute_process(
  COMMAND ${PYTHON} -I -c [=[
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, kvactor
assert kvactor.__file__.startswith(sys.argv[1]), kvactor.__file__
kv = kvactor.create("local")
kv.init("w", np.zeros(4, np.float32)).result()
kv.push("w", np.full(4, 2.5, np.float32))
out = np.empty(4, np.float32)
kv.pull("w", out=out).result()
assert (out == 2.5).all(), out
print("installed kvactor works:", kvactor.__file__)
]=] "${site}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed package failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "${out}")
