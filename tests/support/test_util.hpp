// Helpers shared by kvactor's test suites. Synchronisation here is by latches and futures,
// never by sleeping.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "kvactor/tensor.hpp"

namespace kvactor::testing {

/// A one-shot gate: wait() blocks until open() (from any thread).
class gate {
 public:
  gate() : f_(p_.get_future().share()) {}
  void open() {
    std::call_once(once_, [this] { p_.set_value(); });
  }
  void wait() const { f_.wait(); }

 private:
  std::promise<void> p_;
  std::shared_future<void> f_;
  std::once_flag once_;
};

inline tensor filled(const shape& s, double v, dtype t = dtype::float32) {
  return tensor::full(s, v, t);
}

/// Every element of t equals v.
inline ::testing::AssertionResult all_equal(const tensor& t, double v) {
  auto xs = t.to_vector();
  if (xs.empty()) return ::testing::AssertionFailure() << "empty tensor";
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (xs[i] != v)
      return ::testing::AssertionFailure()
             << "element " << i << " of " << t.describe() << " is " << xs[i] << ", expected " << v;
  return ::testing::AssertionSuccess();
}

/// Every element of t is within tol of v.
inline ::testing::AssertionResult all_near(const tensor& t, double v, double tol) {
  auto xs = t.to_vector();
  if (xs.empty()) return ::testing::AssertionFailure() << "empty tensor";
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (!(std::abs(xs[i] - v) <= tol))
      return ::testing::AssertionFailure() << "element " << i << " of " << t.describe() << " is "
                                           << xs[i] << ", expected " << v << " +- " << tol;
  return ::testing::AssertionSuccess();
}

}  // namespace kvactor::testing
