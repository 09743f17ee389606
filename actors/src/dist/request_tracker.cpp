#include "request_tracker.hpp"

namespace kvactor::detail {

std::optional<std::uint64_t> request_tracker::track(const dist_op_ptr& o, std::uint32_t k) {
  status lost;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (broken_.is_ok()) {
      const std::uint64_t id = next_id_++;
      if (spare_.empty()) {
        parts_.emplace(id, part_ref{o, k});
      } else {
        auto n = std::move(spare_.back());
        spare_.pop_back();
        n.key() = id;
        n.mapped() = part_ref{o, k};
        parts_.insert(std::move(n));
      }
      return id;
    }
    lost = broken_;
  }
  o->part_done(lost);
  return std::nullopt;
}

std::optional<std::uint64_t> request_tracker::track_control(control_fn done) {
  status lost;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (broken_.is_ok()) {
      const std::uint64_t id = next_id_++;
      controls_.emplace(id, std::move(done));
      return id;
    }
    lost = broken_;
  }
  done(lost);
  return std::nullopt;
}

namespace {

// What map holds under id, no longer held there (a default value when nothing is).
template <class Map>
typename Map::mapped_type take_from(Map& map, std::uint64_t id) {
  typename Map::mapped_type v{};
  if (auto it = map.find(id); it != map.end()) {
    v = std::move(it->second);
    map.erase(it);
  }
  return v;
}

}  // namespace

request_tracker::part_ref request_tracker::take_part_locked(std::uint64_t id) {
  auto n = parts_.extract(id);
  if (n.empty()) return {};
  part_ref r = std::move(n.mapped());
  if (spare_.size() < max_spare) {
    if (spare_.capacity() == 0) spare_.reserve(max_spare);
    spare_.push_back(std::move(n));
  }
  return r;
}

request_tracker::taken request_tracker::take(std::uint64_t id) {
  taken t;
  std::lock_guard<std::mutex> g(mu_);
  t.part = take_part_locked(id);
  if (!t.part.op) t.control = take_from(controls_, id);
  return t;
}

request_tracker::part_ref request_tracker::take_part(std::uint64_t id) {
  std::lock_guard<std::mutex> g(mu_);
  return take_part_locked(id);
}

request_tracker::control_fn request_tracker::take_control(std::uint64_t id) {
  std::lock_guard<std::mutex> g(mu_);
  return take_from(controls_, id);
}

status request_tracker::broken() const {
  std::lock_guard<std::mutex> g(mu_);
  return broken_;
}

std::size_t request_tracker::pending() const {
  std::lock_guard<std::mutex> g(mu_);
  return parts_.size() + controls_.size();
}

}  // namespace kvactor::detail
