// Rate limit for the lines a listener logs about connections it refused or lost before they
// authenticated: a flood of bad connections must not turn into a flood of log lines. At most
// `lines` lines per `interval`; the rest are counted, and one summary line reports the count
// when the interval ends (by a timer), at stop(), or before the next line after it.
//
// Thread-safety: line() and stop() may be called from any thread (under an internal mutex).
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "core.hpp"

namespace kvactor::net::detail {

class log_limiter : public std::enable_shared_from_this<log_limiter> {
 public:
  using clock = std::chrono::steady_clock;

  /// `where` names the listener in the summary ("port 4000").
  log_limiter(std::shared_ptr<core> rt, std::string where, std::size_t lines,
              std::chrono::milliseconds interval);

  /// Logs `text` (as log_line) unless this interval's lines are used up.
  void line(const std::string& text);
  /// Reports what was held back and arms no timer from now on (the listener stopped; a
  /// pending timer would keep the runtime's threads busy).
  void stop();

 private:
  void roll_locked(clock::time_point now);
  void on_timer();

  const std::shared_ptr<core> rt_;  // first: the io_context outlives the timer
  const std::string where_;
  const std::size_t lines_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  boost::asio::steady_timer timer_;  // under mu_, like everything below
  clock::time_point window_start_;
  std::size_t logged_ = 0;
  std::size_t held_back_ = 0;
  bool armed_ = false;
  bool stopped_ = false;
};

}  // namespace kvactor::net::detail
