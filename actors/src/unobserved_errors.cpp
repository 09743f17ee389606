#include "unobserved_errors.hpp"

#include <algorithm>

namespace kvactor::detail {

void unobserved_errors::watch(const future<void>& f) {
  if (f.valid()) f.state_ptr()->report_errors_to(weak_from_this());
}

void unobserved_errors::failed(std::shared_ptr<const state_base> s) {
  std::lock_guard<std::mutex> g(mu_);
  failed_.push_back(std::move(s));
  if (failed_.size() >= prune_at_) {
    prune();
    prune_at_ = std::max<std::size_t>(64, 2 * failed_.size());
  }
}

void unobserved_errors::prune() {
  failed_.erase(
      std::remove_if(failed_.begin(), failed_.end(), [](const auto& s) { return s->observed(); }),
      failed_.end());
  // Held by us alone, a state can never be observed: nothing after it can be the first.
  auto settled = std::find_if(failed_.begin(), failed_.end(),
                              [](const auto& s) { return s.use_count() == 1; });
  if (settled != failed_.end()) failed_.erase(settled + 1, failed_.end());
}

status unobserved_errors::take_first() {
  std::vector<std::shared_ptr<const state_base>> all;
  {
    std::lock_guard<std::mutex> g(mu_);
    all.swap(failed_);
    prune_at_ = 64;
  }
  for (const auto& s : all)
    if (!s->observed()) return s->get_status();
  return {};
}

}  // namespace kvactor::detail
