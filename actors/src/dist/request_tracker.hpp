// A worker's requests awaiting an answer, by message id: the parts of its ops (dist_op +
// part index) and its control messages (a callback each: commands, barriers). One id space
// and one lock for both, so that a reply's id is looked up once, and a node's loss fails
// everything pending and refuses everything later in one step: once broken, nothing is
// tracked any more, and what would have been fails at once with the loss's status.
// Thread-safety: every member may be called from any thread; callbacks and parts are
// completed outside the lock.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "dist_op.hpp"

namespace kvactor::detail {

class request_tracker {
 public:
  using control_fn = std::function<void(const status&)>;

  struct part_ref {
    dist_op_ptr op;
    std::uint32_t part = 0;
  };

  /// What an id stood for, now no longer tracked: a part (op set), a control callback
  /// (control set), or neither when the id is unknown or already answered.
  struct taken {
    part_ref part;
    control_fn control;
  };

  /// A fresh id for part k of o; once broken, fails the part with the loss's status instead
  /// (nullopt).
  std::optional<std::uint64_t> track(const dist_op_ptr& o, std::uint32_t k);

  /// A fresh id for a control message's callback; once broken, calls done with the loss's
  /// status instead (nullopt).
  std::optional<std::uint64_t> track_control(control_fn done);

  /// Stops tracking id and says what it stood for.
  taken take(std::uint64_t id);
  /// The part under id, no longer tracked (null op when id is not a pending part).
  part_ref take_part(std::uint64_t id);
  /// The control callback under id, no longer tracked (empty when id is not one).
  control_fn take_control(std::uint64_t id);

  /// f(const part_ref*) under the lock, with the part pending under id or null: for looking
  /// at the op (where a reply should land) without taking it.
  template <class F>
  auto with_part(std::uint64_t id, F&& f) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = parts_.find(id);
    return f(it == parts_.end() ? nullptr : &it->second);
  }

  /// The first loss breaks the tracker: announce() runs, then every pending part and control
  /// callback fails with why. A later loss changes nothing (false).
  template <class F>
  bool fail_all(const status& why, F&& announce) {
    std::unordered_map<std::uint64_t, part_ref> parts;
    std::unordered_map<std::uint64_t, control_fn> controls;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!broken_.is_ok()) return false;
      broken_ = why;
      parts.swap(parts_);
      controls.swap(controls_);
    }
    announce();
    for (auto& [id, pp] : parts)
      pp.op->part_done(why);
    for (auto& [id, fn] : controls)
      fn(why);
    return true;
  }
  bool fail_all(const status& why) {
    return fail_all(why, [] {});
  }

  /// The loss that broke the tracker, or ok.
  status broken() const;
  std::size_t pending() const;

 private:
  using part_map = std::unordered_map<std::uint64_t, part_ref>;
  part_ref take_part_locked(std::uint64_t id);

  mutable std::mutex mu_;
  std::uint64_t next_id_ = 1;
  part_map parts_;
  // Nodes of answered parts, reused for the next ones (a map node was an allocation and a
  // free per request); at most max_spare of them.
  static constexpr std::size_t max_spare = 1024;
  std::vector<part_map::node_type> spare_;
  std::unordered_map<std::uint64_t, control_fn> controls_;
  status broken_;
};

}  // namespace kvactor::detail
