// The facade-side catalogue of initialised keys: shape, dtype, shard and a dense id. Calls
// are validated against it before anything is sent, which is what lets a call on several
// keys fail whole and leave the store untouched.
// Thread-safety: lookups under mutex() shared, additions under mutex() exclusive.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "kvactor/device.hpp"
#include "kvactor/dtype.hpp"
#include "kvactor/error.hpp"
#include "kvactor/key.hpp"
#include "kvactor/shape.hpp"

namespace kvactor::detail {

struct key_info {
  key user_key;
  std::int64_t id = 0;
  kvactor::shape shape;
  kvactor::dtype dtype = dtype::float32;
  std::uint32_t shard = 0;
  /// Where the store keeps the value: cpu, or (device store with devices) the CUDA device the
  /// key was placed on at init.
  kvactor::device home;

  std::string name() const { return user_key.to_string(); }
  std::size_t numel() const { return static_cast<std::size_t>(shape.numel()); }
  std::size_t nbytes() const { return numel() * size_of(dtype); }
};
using key_info_ptr = std::shared_ptr<const key_info>;

class key_registry {
 public:
  enum class kind : std::uint8_t { unset, ints, strings };

  explicit key_registry(std::size_t num_shards) : num_shards_(num_shards ? num_shards : 1) {}

  std::shared_mutex& mutex() const noexcept { return mu_; }

  /// Caller holds mutex() (shared or exclusive).
  key_info_ptr find(const key& k) const;
  /// As find, taking the shared lock itself.
  key_info_ptr find_locked(const key& k) const;
  /// Caller holds mutex() exclusively and has checked that k is new.
  key_info_ptr add(const key& k, const kvactor::shape& s, kvactor::dtype t,
                   kvactor::device home = kvactor::device::cpu());

  /// mixed_key_types unless k's kind agrees with the keys this store has seen. Caller holds
  /// mutex() (shared or exclusive).
  status check_kind(const key& k) const;
  /// check_kind, and mixed_key_types when k and the call's first key differ in kind.
  status check_call_kind(const key& k, const key& first) const;
  /// Fixes the store's key kind on its first key. Caller holds mutex() exclusively.
  void set_kind(const key& k) noexcept;

  std::size_t size() const;

 private:
  mutable std::shared_mutex mu_;
  std::size_t num_shards_;
  kind kind_ = kind::unset;
  std::int64_t next_id_ = 0;
  std::unordered_map<std::int64_t, key_info_ptr> ints_;
  std::unordered_map<std::string, key_info_ptr> strings_;
};

}  // namespace kvactor::detail
