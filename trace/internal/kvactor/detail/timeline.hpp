// Not installed (trace/internal): the timeline, a per-process recorder of what the stores and
// nodes do, written as a Chrome trace-event file (the JSON that chrome://tracing and Perfetto
// open). KVACTOR_TIMELINE=path turns it on when the process starts; each process writes its
// own file, <path>.<pid>.json, when its stores and nodes shut down and again at exit (each
// write holds everything recorded so far). The file's otherData carries a clock anchor (the
// steady and the system clock read together), by which kvactor-timeline puts the files of one
// job on one time axis.
//
// Off, every hook costs one relaxed atomic load and a branch: callers test enabled() before
// they read a clock or build a name. On, an event goes into a buffer of the recording
// thread's own (its mutex is shared only with a writer), at most max_events_per_thread per
// thread; later ones are counted as dropped (otherData.dropped_events).
//
// Spans: span() is a complete event ("ph":"X") on the calling thread, for work that thread
// did from begin to end, so the spans of one thread nest or are disjoint. async_span() is a
// lifetime that crosses threads (queueing, a request in flight, an op from issue to
// completion): an async pair ("b"/"e") under an id of its own; viewers group them by name.
// Thread-safety: every function may be called from any thread at any time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "kvactor/error.hpp"

namespace kvactor::detail::timeline {

extern std::atomic<bool> on_flag;

/// Whether the timeline records; one relaxed load (the hooks' only cost while it is off).
inline bool enabled() noexcept {
  return on_flag.load(std::memory_order_relaxed);
}

/// The timeline's clock: steady-clock nanoseconds (the file's anchor relates it to the
/// system clock).
std::int64_t now_ns() noexcept;

/// What a span says besides its name: the key (as key::to_string prints it) and up to three
/// named integers (bytes, part, server, worker, ...). Names must be string literals.
struct args {
  struct number {
    const char* name = nullptr;
    std::int64_t value = 0;
  };
  std::string key;
  std::array<number, 3> numbers{};

  args() = default;
  explicit args(std::string k) : key(std::move(k)) {}
  /// Adds a named integer (a fourth is ignored).
  args& with(const char* name, std::int64_t value) & noexcept {
    for (auto& n : numbers)
      if (!n.name) {
        n = {name, value};
        break;
      }
    return *this;
  }
  args&& with(const char* name, std::int64_t value) && noexcept {
    return std::move(with(name, value));
  }
};

/// A complete span on the calling thread, begin and end from now_ns(). `category` must be a
/// string literal.
void span(const char* category, std::string_view name, std::int64_t begin_ns, std::int64_t end_ns,
          args a = {});
/// A lifetime: a "b"/"e" pair under a fresh id of its own (so lifetimes that overlap never
/// mismatch), recorded on the calling thread.
void async_span(const char* category, std::string_view name, std::int64_t begin_ns,
                std::int64_t end_ns, args a = {});
/// A moment on the calling thread.
void instant(const char* category, std::string_view name, args a = {});

/// The process as the viewer names it: "worker 0", "server 1", "scheduler", "local". The
/// last one set wins, except that a default (set_process_name_default) never replaces a
/// name set before.
void set_process_name(std::string name);
void set_process_name_default(std::string name);
/// The calling thread's name. name_thread() is a hint from the code it runs ("net I/O",
/// "actor", "caller"): it names the thread unless a hint of at least its weight, or
/// set_thread_name, named it before (a future's continuation may issue ops on the I/O
/// thread: "caller" weighs less than "net I/O").
void set_thread_name(std::string name);
void name_thread(const char* hint, int weight = 1);

/// Events one thread keeps; later ones are dropped (and counted).
inline constexpr std::size_t max_events_per_thread = 1 << 18;

/// Turns recording on, the file being `<base>.<pid>.json`; a later start changes the base.
/// Registers the write at exit once.
void start(std::string base);
/// Turns recording off; what was recorded stays (and is written).
void stop() noexcept;
/// Forgets every event recorded so far (tests).
void clear();
/// The file write() writes (empty before any start).
std::string file_path();
/// Writes everything recorded so far to file_path() (a temporary file renamed over it, so a
/// reader never sees half a file); nothing when the timeline was never started. An error
/// names the file and the cause.
status write();
/// write(), a failure told on stderr (at shutdown and exit nobody else would hear of it).
void write_and_report() noexcept;
/// Events dropped so far because a thread's buffer was full.
std::uint64_t dropped() noexcept;

/// Appends s to out as a JSON string (quoted, escaped; invalid UTF-8 becomes U+FFFD).
void append_json_string(std::string& out, std::string_view s);
/// Length of the valid UTF-8 sequence at s[i] (no overlong forms, surrogates or code points
/// past U+10FFFF), or 0: the one rule of the writer and of kvactor-timeline's reader.
std::size_t utf8_length(std::string_view s, std::size_t i);

}  // namespace kvactor::detail::timeline
