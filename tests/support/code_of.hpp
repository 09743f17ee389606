// code_of(f): the errc a kvactor future ends with (errc::ok when it succeeds), for tests that
// compare the code of a refused call. Used by in-process tests and by the cluster tests'
// worker programs alike. Thread-safety: blocks the calling thread until f completes.
#pragma once

#include "kvactor/error.hpp"
#include "kvactor/future.hpp"

namespace kvactor::testing {

inline errc code_of(future<void> f) {
  try {
    f.get();
  } catch (const error& e) {
    return e.code();
  }
  return errc::ok;
}

}  // namespace kvactor::testing
