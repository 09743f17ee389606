// Errors: one errc enum for every layer, a cheap status value, and the exception that
// future::get() throws.
// Thread-safety: all types here are values; distinct objects may be used from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace kvactor {

enum class errc : std::uint8_t {
  ok = 0,
  not_initialized = 1,
  already_initialized,
  shape_mismatch,
  dtype_mismatch,
  mixed_key_types,
  invalid_argument,
  peer_lost,
  timeout,
  protocol_error,
  unauthenticated,
  unsupported,
  out_of_range,
  updater_failed,
  shut_down,
  internal,
  /// The operation was abandoned because another participant's part of it failed or will
  /// never come (a dist_sync round with a rejected push, or one a departed worker never joined).
  aborted,
};
/// The highest errc value (a decoder refuses codes above it).
constexpr errc last_errc = errc::aborted;

/// The enumerator's name, e.g. "not_initialized".
const char* to_string(errc code) noexcept;

const std::error_category& kvactor_category() noexcept;
std::error_code make_error_code(errc code) noexcept;

/// An operation's outcome: ok, or an errc with a message naming the key and the offending
/// value. Ok costs one null pointer; errors share their text on copy.
class status {
 public:
  status() noexcept = default;
  status(errc code, std::string message);

  static status ok() noexcept { return {}; }

  bool is_ok() const noexcept { return rep_ == nullptr; }
  explicit operator bool() const noexcept { return is_ok(); }
  errc code() const noexcept { return rep_ ? rep_->code : errc::ok; }
  /// Empty when ok.
  const std::string& message() const noexcept;
  /// "errc_name: message", or "ok".
  std::string to_string() const;

  /// Throws kvactor::error if not ok.
  void raise_if_error() const;

 private:
  struct rep {
    errc code;
    std::string message;
  };
  std::shared_ptr<const rep> rep_;
};

/// Thrown by the synchronous parts of the API and by future::get().
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message);
  explicit error(const status& s);

  errc code() const noexcept { return code_; }
  /// The message without the "errc_name: " prefix that what() carries.
  const std::string& message() const noexcept { return message_; }
  status to_status() const { return status{code_, message_}; }

 private:
  errc code_;
  std::string message_;
};

}  // namespace kvactor

namespace std {
template <>
struct is_error_code_enum<kvactor::errc> : true_type {};
}  // namespace std
