#include "key_registry.hpp"

namespace kvactor::detail {

key_info_ptr key_registry::find_locked(const key& k) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return find(k);
}

key_info_ptr key_registry::find(const key& k) const {
  if (k.is_int()) {
    auto it = ints_.find(k.as_int());
    return it == ints_.end() ? nullptr : it->second;
  }
  auto it = strings_.find(k.as_string());
  return it == strings_.end() ? nullptr : it->second;
}

key_info_ptr key_registry::add(const key& k, const kvactor::shape& s, kvactor::dtype t,
                               kvactor::device home) {
  auto info = std::make_shared<key_info>();
  info->user_key = k;
  info->id = next_id_++;
  info->shape = s;
  info->dtype = t;
  info->home = home;
  info->shard = static_cast<std::uint32_t>(k.hash() % num_shards_);
  if (k.is_int())
    ints_.emplace(k.as_int(), info);
  else
    strings_.emplace(k.as_string(), info);
  return info;
}

status key_registry::check_kind(const key& k) const {
  if (kind_ == kind::unset) return {};
  if (k.is_int() == (kind_ == kind::ints)) return {};
  return status{errc::mixed_key_types, "key " + k.to_string() + " is " +
                                           (k.is_int() ? "an int" : "a string") +
                                           " key, but this store uses " +
                                           (kind_ == kind::ints ? "int" : "string") + " keys"};
}

status key_registry::check_call_kind(const key& k, const key& first) const {
  if (k.is_int() != first.is_int())
    return status{errc::mixed_key_types, "keys " + first.to_string() + " and " + k.to_string() +
                                             " mix int and string keys in one call"};
  return check_kind(k);
}

void key_registry::set_kind(const key& k) noexcept {
  if (kind_ == kind::unset) kind_ = k.is_int() ? kind::ints : kind::strings;
}

std::size_t key_registry::size() const {
  return ints_.size() + strings_.size();
}

}  // namespace kvactor::detail
