// result<T>: a value or a status, for the layers below actors/ that report errors without
// throwing. Thread-safety: a value type.
#pragma once

#include <optional>
#include <utility>

#include "kvactor/error.hpp"

namespace kvactor {

template <class T>
class result {
 public:
  // Implicit by design: a function returns its value or its failure as it is.
  // NOLINTBEGIN(google-explicit-constructor)
  result(T value) : value_(std::move(value)) {}
  result(status s) : status_(std::move(s)) {
    if (status_.is_ok()) status_ = status{errc::internal, "result built from an ok status"};
  }
  // NOLINTEND(google-explicit-constructor)
  result(errc code, std::string message) : status_(code, std::move(message)) {}

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  const status& error() const noexcept { return status_; }

  T& value() & {
    status_.raise_if_error();
    return *value_;
  }
  const T& value() const& {
    status_.raise_if_error();
    return *value_;
  }
  T&& value() && {
    status_.raise_if_error();
    return std::move(*value_);
  }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  status status_;
};

}  // namespace kvactor
