#include "kvactor/error.hpp"

namespace kvactor {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok:
      return "ok";
    case errc::not_initialized:
      return "not_initialized";
    case errc::already_initialized:
      return "already_initialized";
    case errc::shape_mismatch:
      return "shape_mismatch";
    case errc::dtype_mismatch:
      return "dtype_mismatch";
    case errc::mixed_key_types:
      return "mixed_key_types";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::peer_lost:
      return "peer_lost";
    case errc::timeout:
      return "timeout";
    case errc::protocol_error:
      return "protocol_error";
    case errc::unauthenticated:
      return "unauthenticated";
    case errc::unsupported:
      return "unsupported";
    case errc::out_of_range:
      return "out_of_range";
    case errc::updater_failed:
      return "updater_failed";
    case errc::shut_down:
      return "shut_down";
    case errc::internal:
      return "internal";
    case errc::aborted:
      return "aborted";
  }
  return "unknown_errc";
}

namespace {
class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "kvactor"; }
  std::string message(int code) const override { return to_string(static_cast<errc>(code)); }
};
}  // namespace

const std::error_category& kvactor_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code), kvactor_category()};
}

status::status(errc code, std::string message) {
  if (code != errc::ok) rep_ = std::make_shared<const rep>(rep{code, std::move(message)});
}

const std::string& status::message() const noexcept {
  static const std::string empty;
  return rep_ ? rep_->message : empty;
}

std::string status::to_string() const {
  if (!rep_) return "ok";
  return std::string{kvactor::to_string(rep_->code)} + ": " + rep_->message;
}

void status::raise_if_error() const {
  if (rep_) throw error{*this};
}

error::error(errc code, const std::string& message)
    : std::runtime_error(std::string{kvactor::to_string(code)} + ": " + message),
      code_(code),
      message_(message) {}

error::error(const status& s) : error(s.code(), s.message()) {}

}  // namespace kvactor
