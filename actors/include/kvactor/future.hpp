// future<T>: the result of every asynchronous kvactor call.
//
//   auto f = kv.push(3, grad);     // returns at once
//   f.then([](const future<void>& done) { ... });   // runs when ready, on the thread that
//                                                   // completed it (a store thread): keep it
//                                                   // short and never wait on the store there
//   f.get();                       // waits; throws kvactor::error on failure
//
// Several future handles may share one result; all of them see it. A promise that is
// destroyed before it is fulfilled completes its future with errc::internal, so no future
// waits forever.
// Thread-safety: every member may be called from any thread, concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ratio>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvactor/error.hpp"

namespace kvactor {

template <class T>
class future;
template <class T>
class promise;

namespace detail {

class state_base;

/// Receives the states that complete with an error (a store's record of the errors nobody
/// observed, for wait_all()). Called on the completing thread.
class error_sink {
 public:
  virtual ~error_sink() = default;
  virtual void failed(std::shared_ptr<const state_base> s) = 0;
};

class state_base : public std::enable_shared_from_this<state_base> {
 public:
  state_base() = default;
  state_base(const state_base&) = delete;
  state_base& operator=(const state_base&) = delete;
  virtual ~state_base() = default;

  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  void wait() const;
  bool wait_until(std::chrono::steady_clock::time_point deadline) const;
  /// Valid once ready().
  const kvactor::status& get_status() const noexcept { return status_; }
  /// Runs cb once ready: at once on this thread if already ready, else on the completing
  /// thread.
  void on_ready(std::function<void()> cb);
  /// If this state completes with an error, hands it to sink while sink lives (at once when
  /// it has already). Unlike on_ready, allocates nothing: every call's future is watched so.
  void report_errors_to(std::weak_ptr<error_sink> sink);
  /// Completes with s (ok or not) unless already completed; returns whether it did.
  bool finish(kvactor::status s);
  /// Someone saw the outcome through a future (get, get_status, then, when_all), so a store's
  /// wait_all() does not report its error again.
  void mark_observed() const noexcept { observed_.store(true, std::memory_order_release); }
  bool observed() const noexcept { return observed_.load(std::memory_order_acquire); }

 protected:
  /// Claims the right to complete; the winner then sets its value and calls publish().
  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }
  void publish(kvactor::status s);
  void report(const std::weak_ptr<error_sink>& sink);
  /// When publish() woke the parked waiters; called by one of them, under mu_.
  std::chrono::steady_clock::time_point published_at() const;

 private:
  std::atomic<bool> claimed_{false};
  std::atomic<bool> ready_{false};
  mutable std::atomic<bool> observed_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int waiters_ = 0;                               // guarded by mu_
  std::chrono::steady_clock::time_point published_at_{};  // guarded by mu_; set if waiters_
  kvactor::status status_;
  std::vector<std::function<void()>> callbacks_;  // guarded by mu_
  std::weak_ptr<error_sink> sink_;                // guarded by mu_
};

template <class T>
class state : public state_base {
 public:
  bool set_value(T v) {
    if (!claim()) return false;
    value_.emplace(std::move(v));
    publish(status{});
    return true;
  }
  /// Completes with an error. An ok status carries no value, so it completes with
  /// errc::internal rather than leaving get() a value to read that does not exist.
  bool finish(kvactor::status s) {
    if (s.is_ok()) s = status{errc::internal, "a future<T> was completed without a value"};
    return state_base::finish(std::move(s));
  }
  const T& value() const { return *value_; }

 private:
  std::optional<T> value_;
};

template <>
class state<void> : public state_base {
 public:
  bool set_value() { return finish(status{}); }
};

template <class T>
struct unwrap_future {
  using type = T;
};

}  // namespace detail

template <class T>
class future {
 public:
  using value_type = T;

  /// An invalid future (valid() is false); only assignment and valid() may be used.
  future() = default;

  bool valid() const noexcept { return state_ != nullptr; }
  bool ready() const noexcept { return state_->ready(); }

  /// Blocks until ready.
  void wait() const { state_->wait(); }
  /// Blocks until ready or until the time has passed; returns ready(). A duration too long
  /// for the clock (e.g. hours::max()) waits without a deadline.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    using clock = std::chrono::steady_clock;
    if (d <= d.zero()) return ready();
    const auto now = clock::now();
    if constexpr (!std::ratio_less_v<Period, clock::period> || std::is_floating_point_v<Rep>) {
      // d in the clock's (finer or equal) unit, or now + d, could overflow: compare d with the
      // time left first, in d's own unit (converting the time left to it only divides).
      using coarse = std::chrono::duration<
          std::conditional_t<std::is_floating_point_v<Rep>, Rep, typename clock::rep>, Period>;
      if (d >= std::chrono::duration_cast<coarse>(clock::time_point::max() - now)) {
        wait();
        return true;
      }
    }
    return state_->wait_until(now + std::chrono::duration_cast<clock::duration>(d));
  }

  /// Waits, then returns the status (never throws). Counts as observing an error (see
  /// kvstore::wait_all()).
  const kvactor::status& get_status() const {
    wait();
    state_->mark_observed();
    return state_->get_status();
  }

  /// Waits, then returns the value or throws kvactor::error. Counts as observing an error.
  decltype(auto) get() const {
    wait();
    state_->mark_observed();
    state_->get_status().raise_if_error();
    if constexpr (!std::is_void_v<T>) return static_cast<const T&>(state_->value());
  }

  /// Calls f(ready_future) once this future is ready and returns a future of f's result.
  /// If f throws kvactor::error, the returned future carries that error; any other
  /// exception becomes errc::internal. Counts as observing an error: f receives it.
  template <class F>
  auto then(F&& f) const -> future<std::invoke_result_t<F, const future<T>&>> {
    using R = std::invoke_result_t<F, const future<T>&>;
    state_->mark_observed();
    auto next = std::make_shared<detail::state<R>>();
    future<T> self = *this;
    state_->on_ready([self, next, fn = std::forward<F>(f)]() mutable {
      try {
        if constexpr (std::is_void_v<R>) {
          fn(self);
          next->set_value();
        } else {
          next->set_value(fn(self));
        }
      } catch (const error& e) {
        next->finish(e.to_status());
      } catch (const std::exception& e) {
        next->finish(status{errc::internal, std::string{"continuation threw: "} + e.what()});
      } catch (...) {
        next->finish(status{errc::internal, "continuation threw a non-standard exception"});
      }
    });
    return future<R>{std::move(next)};
  }

  /// A future that is already complete.
  static future ready_with(kvactor::status s) {
    auto st = std::make_shared<detail::state<T>>();
    st->finish(std::move(s));
    return future{std::move(st)};
  }

  explicit future(std::shared_ptr<detail::state<T>> s) noexcept : state_(std::move(s)) {}
  const std::shared_ptr<detail::state<T>>& state_ptr() const noexcept { return state_; }

 private:
  std::shared_ptr<detail::state<T>> state_;
};

template <class T>
class promise {
 public:
  promise() : state_(std::make_shared<detail::state<T>>()) {}
  promise(promise&&) noexcept = default;
  promise& operator=(promise&& other) noexcept {
    abandon();
    state_ = std::move(other.state_);
    return *this;
  }
  promise(const promise&) = delete;
  promise& operator=(const promise&) = delete;
  ~promise() { abandon(); }

  future<T> get_future() const { return future<T>{state_}; }

  template <class U = T, class = std::enable_if_t<std::is_void_v<U>>>
  bool set_value() {
    return state_->set_value();
  }
  template <class U, class = std::enable_if_t<!std::is_void_v<T> && std::is_convertible_v<U, T>>>
  bool set_value(U&& v) {
    return state_->set_value(T(std::forward<U>(v)));
  }
  /// Completes with an error (an ok status completes a future<void> successfully).
  bool set_status(kvactor::status s) { return state_->finish(std::move(s)); }

 private:
  void abandon() noexcept {
    if (state_ && !state_->ready())
      state_->finish(status{errc::internal, "the operation was abandoned before it completed"});
  }
  std::shared_ptr<detail::state<T>> state_;
};

/// A future that completes when all of fs have; it carries the first error among them (in
/// the order given) or success. Counts as observing the errors of fs.
future<void> when_all(std::vector<future<void>> fs);

}  // namespace kvactor
