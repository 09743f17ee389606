#include "kvactor/future.hpp"

#include <algorithm>
#include <thread>

namespace kvactor {

namespace detail {

namespace {
// A short spin before parking: a store round trip on this machine takes a few microseconds,
// and parking on a condition variable then costs tens more.
constexpr auto spin_for = std::chrono::microseconds(30);

// Spins until ready or `end`; true when ready.
bool spin_until(const state_base& s, std::chrono::steady_clock::time_point end) {
  do {
    for (int i = 0; i < 64; ++i)
      if (s.ready()) return true;
    std::this_thread::yield();
  } while (std::chrono::steady_clock::now() < end);
  return s.ready();
}
}  // namespace

void state_base::wait() const {
  if (ready() || spin_until(*this, std::chrono::steady_clock::now() + spin_for)) return;
  std::unique_lock<std::mutex> lk(mu_);
  ++waiters_;
  cv_.wait(lk, [this] { return ready(); });
  --waiters_;
}

// The same spin as wait(), within the deadline: a caller waiting in slices (the Python
// binding looks for Ctrl-C between them) should not pay for parking on every short call.
bool state_base::wait_until(std::chrono::steady_clock::time_point deadline) const {
  if (ready() || spin_until(*this, std::min(deadline, std::chrono::steady_clock::now() + spin_for)))
    return true;
  std::unique_lock<std::mutex> lk(mu_);
  ++waiters_;
  bool ok = cv_.wait_until(lk, deadline, [this] { return ready(); });
  --waiters_;
  return ok;
}

bool state_base::finish(kvactor::status s) {
  if (!claim()) return false;
  publish(std::move(s));
  return true;
}

void state_base::publish(kvactor::status s) {
  std::vector<std::function<void()>> cbs;
  std::weak_ptr<error_sink> sink;
  {
    std::lock_guard<std::mutex> g(mu_);
    status_ = std::move(s);
    ready_.store(true, std::memory_order_release);
    cbs.swap(callbacks_);
    sink.swap(sink_);
    if (waiters_) cv_.notify_all();
  }
  if (!status_.is_ok()) report(sink);
  for (auto& cb : cbs)
    cb();
}

void state_base::report_errors_to(std::weak_ptr<error_sink> sink) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!ready()) {
      sink_ = std::move(sink);
      return;
    }
  }
  if (!status_.is_ok()) report(sink);
}

void state_base::report(const std::weak_ptr<error_sink>& sink) {
  auto to = sink.lock();
  auto self = weak_from_this().lock();  // a state not owned by a shared_ptr is not reported
  if (to && self) to->failed(std::move(self));
}

void state_base::on_ready(std::function<void()> cb) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!ready()) {
      callbacks_.push_back(std::move(cb));
      return;
    }
  }
  cb();
}

}  // namespace detail

future<void> when_all(std::vector<future<void>> fs) {
  struct group {
    std::vector<future<void>> parts;
    std::atomic<std::size_t> left;
    promise<void> done;
  };
  if (fs.empty()) return future<void>::ready_with(status{});
  auto g = std::make_shared<group>();
  g->left = fs.size();
  g->parts = std::move(fs);
  auto result = g->done.get_future();
  for (auto& f : g->parts) {
    f.state_ptr()->mark_observed();  // the group's future carries the error now
    f.state_ptr()->on_ready([g] {
      if (g->left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      for (auto& p : g->parts) {
        if (!p.state_ptr()->get_status().is_ok()) {
          g->done.set_status(p.state_ptr()->get_status());
          return;
        }
      }
      g->done.set_value();
    });
  }
  return result;
}

}  // namespace kvactor
