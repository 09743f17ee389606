#include "kvactor/future.hpp"

#include <algorithm>
#include <thread>

#include "spin_policy.hpp"

namespace kvactor {

namespace detail {

namespace {
using clock = std::chrono::steady_clock;

thread_local spin_policy this_thread_waits;

// Spins until ready or `end`; true when ready.
bool spin_until(const state_base& s, clock::time_point end) {
  do {
    for (int i = 0; i < 64; ++i)
      if (s.ready()) return true;
    std::this_thread::yield();
  } while (clock::now() < end);
  return s.ready();
}
}  // namespace

// A short spin before parking when this thread's waits have been short (spin_policy.hpp): a
// store round trip on this machine takes a few microseconds, and parking then costs tens more.
void state_base::wait() const {
  if (ready()) return;
  const auto start = clock::now();
  auto& policy = this_thread_waits;
  if (policy.should_spin() && spin_until(*this, start + spin_policy::window)) {
    policy.record(clock::now() - start);
    return;
  }
  std::unique_lock<std::mutex> lk(mu_);
  ++waiters_;
  cv_.wait(lk, [this] { return ready(); });
  --waiters_;
  policy.record(published_at() - start);
}

// The same spin as wait(), within the deadline: a caller waiting in slices (the Python
// binding looks for Ctrl-C between them) should not pay for parking on every short call.
bool state_base::wait_until(clock::time_point deadline) const {
  if (ready()) return true;
  const auto start = clock::now();
  auto& policy = this_thread_waits;
  if (policy.should_spin() && spin_until(*this, std::min(deadline, start + spin_policy::window))) {
    policy.record(clock::now() - start);
    return true;
  }
  std::unique_lock<std::mutex> lk(mu_);
  ++waiters_;
  const bool ok = cv_.wait_until(lk, deadline, [this] { return ready(); });
  --waiters_;
  if (ok)
    policy.record(published_at() - start);
  else if (deadline - start > spin_policy::window)
    policy.record(deadline - start);  // a slice that outlasted the window says as much
  return ok;
}

clock::time_point state_base::published_at() const {
  // Not stamped when it was published before this waiter parked: that was just now.
  return published_at_ != clock::time_point{} ? published_at_ : clock::now();
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
    if (waiters_) {
      published_at_ = clock::now();  // tells the parked waiters' spin policies how long it took
      cv_.notify_all();
    }
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
