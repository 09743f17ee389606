#include "log_limiter.hpp"

#include <utility>

namespace kvactor::net::detail {

namespace {

// "10 s" rounded, or "300 ms" below a second.
std::string span(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms < 1000 ? std::to_string(ms) + " ms" : std::to_string((ms + 500) / 1000) + " s";
}

}  // namespace

log_limiter::log_limiter(std::shared_ptr<core> rt, std::string where, std::size_t lines,
                         std::chrono::milliseconds interval)
    : rt_(std::move(rt)),
      where_(std::move(where)),
      lines_(lines),
      interval_(interval),
      timer_(rt_->io),
      window_start_(clock::now()) {}

void log_limiter::roll_locked(clock::time_point now) {
  if (held_back_)
    log_line("... and " + std::to_string(held_back_) + " more refused connections on " + where_ +
             " in the last " + span(now - window_start_));
  window_start_ = now;
  logged_ = 0;
  held_back_ = 0;
}

void log_limiter::line(const std::string& text) {
  std::lock_guard<std::mutex> g(mu_);
  const auto now = clock::now();
  if (now - window_start_ >= interval_) roll_locked(now);
  if (logged_ < lines_) {
    ++logged_;
    log_line(text);
    return;
  }
  ++held_back_;
  if (armed_ || stopped_) return;
  armed_ = true;
  timer_.expires_at(window_start_ + interval_);
  timer_.async_wait(
      [self = shared_from_this()](const boost::system::error_code&) { self->on_timer(); });
}

void log_limiter::on_timer() {
  std::lock_guard<std::mutex> g(mu_);
  armed_ = false;
  if (stopped_) return;  // stop() reported already
  const auto now = clock::now();
  if (now - window_start_ >= interval_) roll_locked(now);
}

void log_limiter::stop() {
  std::lock_guard<std::mutex> g(mu_);
  if (stopped_) return;
  stopped_ = true;
  if (armed_) timer_.cancel();
  roll_locked(clock::now());
}

}  // namespace kvactor::net::detail
