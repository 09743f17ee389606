// The recorder: per-thread event buffers, the switch, ids and names.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "timeline_state.hpp"

namespace kvactor::detail::timeline {

std::atomic<bool> on_flag{false};

namespace {

std::atomic<std::uint64_t> next_id{1};

// The thread's buffer, registered on first use; the registry keeps it past the thread's end,
// so its events are still written.
thread_buffer& my_buffer() {
  thread_local std::shared_ptr<thread_buffer> mine;
  if (!mine) {
    auto b = std::make_shared<thread_buffer>();
    registry& r = the_registry();
    std::lock_guard<std::mutex> g(r.mu);
    b->tid = r.next_tid++;
    r.threads.push_back(b);
    mine = std::move(b);
  }
  return *mine;
}

void record(event&& e) {
  thread_buffer& b = my_buffer();
  std::lock_guard<std::mutex> g(b.mu);
  if (b.events.size() >= max_events_per_thread) {
    ++b.dropped;
    return;
  }
  b.events.push_back(std::move(e));
}

void write_at_exit() {
  write_and_report();
}

// KVACTOR_TIMELINE is read when the program starts, so every store and node of the process
// finds the timeline on.
[[maybe_unused]] const bool started_from_env = [] {
  const char* base = std::getenv("KVACTOR_TIMELINE");
  if (base && *base) start(base);
  return true;
}();

}  // namespace

registry& the_registry() {
  // NOLINTNEXTLINE(cppcoreguidelines-owning-memory): leaked on purpose, see the header
  static registry* r = new registry;
  return *r;
}

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void span(const char* category, std::string_view name, std::int64_t begin_ns, std::int64_t end_ns,
          args a) {
  record(event{'X', category, std::string{name}, begin_ns,
               std::max<std::int64_t>(end_ns - begin_ns, 0), 0, std::move(a)});
}

void async_span(const char* category, std::string_view name, std::int64_t begin_ns,
                std::int64_t end_ns, args a) {
  const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  record(event{'b', category, std::string{name}, begin_ns,
               std::max<std::int64_t>(end_ns - begin_ns, 0), id, std::move(a)});
}

void instant(const char* category, std::string_view name, args a) {
  record(event{'i', category, std::string{name}, now_ns(), 0, 0, std::move(a)});
}

void set_process_name(std::string name) {
  registry& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  r.process_name = std::move(name);
  r.process_name_set = true;
}

void set_process_name_default(std::string name) {
  registry& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  if (!r.process_name_set) r.process_name = std::move(name);
}

namespace {
// The weight of the calling thread's name (set_thread_name: the most).
thread_local int name_weight = 0;
}  // namespace

void set_thread_name(std::string name) {
  name_weight = std::numeric_limits<int>::max();
  thread_buffer& b = my_buffer();
  std::lock_guard<std::mutex> g(b.mu);
  b.name = std::move(name);
}

void name_thread(const char* hint, int weight) {
  if (weight <= name_weight) return;
  name_weight = weight;
  thread_buffer& b = my_buffer();
  std::lock_guard<std::mutex> g(b.mu);
  b.name = hint;
}

void start(std::string base) {
  registry& r = the_registry();
  {
    std::lock_guard<std::mutex> g(r.mu);
    r.base = std::move(base);
    if (r.anchor_steady_ns == 0) {
      // Both clocks read together: the steady reading is the middle of two around the
      // system one, so the pair is off by at most half the gap.
      const std::int64_t s1 = now_ns();
      const std::int64_t sys = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
      const std::int64_t s2 = now_ns();
      r.anchor_steady_ns = s1 + (s2 - s1) / 2;
      r.anchor_system_ns = sys;
    }
    if (!r.exit_hook) {
      r.exit_hook = true;
      std::atexit(write_at_exit);
    }
  }
  on_flag.store(true, std::memory_order_relaxed);
}

void stop() noexcept {
  on_flag.store(false, std::memory_order_relaxed);
}

void clear() {
  registry& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  for (auto& t : r.threads) {
    std::lock_guard<std::mutex> tg(t->mu);
    t->events.clear();
    t->dropped = 0;
  }
}

std::string file_path() {
  registry& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  if (r.base.empty()) return {};
  return r.base + "." + std::to_string(::getpid()) + ".json";
}

void write_and_report() noexcept {
  try {
    if (auto s = write(); !s) std::fprintf(stderr, "kvactor: %s\n", s.message().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvactor: timeline: %s\n", e.what());
  }
}

std::uint64_t dropped() noexcept {
  registry& r = the_registry();
  std::lock_guard<std::mutex> g(r.mu);
  std::uint64_t n = 0;
  for (auto& t : r.threads) {
    std::lock_guard<std::mutex> tg(t->mu);
    n += t->dropped;
  }
  return n;
}

}  // namespace kvactor::detail::timeline
