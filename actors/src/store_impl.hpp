// The interface behind the kvstore facade: the store front over a router (store_front.hpp;
// the local runtime, local_router.cpp: "local" and "device"; the cluster worker,
// dist/worker.cpp: "dist_sync", "dist_async", and wrapped in device_router.cpp:
// "dist_*_device") and user-registered stores (registered_store.cpp).
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kvactor/kvstore.hpp"
#include "op.hpp"
#include "output_cast.hpp"
#include "unobserved_errors.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace kvactor::detail {

/// How row_sparse_pull lays out what it writes (see store_impl::row_sparse_pull).
enum class row_layout : std::uint8_t { dense, compact };

class store_impl {
 public:
  virtual ~store_impl() = default;

  /// For pushpull, outs may be empty (write back into values).
  virtual future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                              const value_list& outs, int priority) = 0;
  /// Row-sparse init (kind init) or push (kind push).
  virtual future<void> submit_sparse(op_kind kind, const key_list& keys, const sparse_list& values,
                                     int priority) = 0;
  /// layout dense: each output has the key's shape (requested rows, zero elsewhere). compact:
  /// the rows of a row-sparse output (sparse_pull.cpp): (its unique requested rows x the key's
  /// row), of the key's type, filled in id order; a store without it refuses (unsupported).
  virtual future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                                       const value_list& row_ids, int priority,
                                       row_layout layout) = 0;
  virtual void set_updater(std::shared_ptr<const updater> u) = 0;
  virtual future<void> set_optimizer(const optimizer_config& cfg) = 0;
  virtual future<void> set_compression(const std::string& type, double threshold) = 0;
  virtual future<void> save_states(const std::string& file, bool dump_optimizer) = 0;
  virtual future<void> load_states(const std::string& file) = 0;
  /// MXNet's _send_command_to_servers; local stores have no servers (unsupported).
  virtual future<void> send_command(int head, const std::string& body) = 0;
  virtual std::string type() const = 0;
  virtual int rank() const = 0;
  virtual int num_workers() const = 0;
  virtual future<void> barrier() = 0;
  virtual bool is_capable(std::string_view capability) const = 0;
  virtual void wait_all() = 0;
  virtual std::size_t outstanding() const = 0;
  /// Waits for outstanding work, then stops the actors. Idempotent. Never call it from one
  /// of the store's own threads.
  virtual void shutdown() = 0;
  /// The actor that speaks the embedding message interface (kvactor/caf.hpp); null for a
  /// store that has none (user-registered types).
  virtual const caf::actor* client_actor() const noexcept = 0;
  /// What the store knows of key k (its shape and element type), or null when k is unknown or
  /// the store keeps no registry (user-registered types). The facade converts pulled values
  /// into outputs of other types (output_cast.hpp) and sizes row-sparse outputs with it.
  virtual key_info_ptr key_of(const key& k) const {
    (void)k;
    return nullptr;
  }
  /// ok, or mixed_key_types when k's kind (int or string) is not first's or not the store's,
  /// as every call's resolution checks it; ok for a store without a registry.
  virtual status check_key_kind(const key& k, const key& first) const {
    (void)k;
    (void)first;
    return {};
  }
  /// False for a store that takes outputs as they are given (user-registered types).
  virtual bool converts_outputs() const noexcept { return true; }

  /// Errors of the futures the kvstore facade handed out, for its wait_all().
  unobserved_errors& errors() noexcept { return *errors_; }
  /// The facade's conversions into outputs still under way, for its wait_all().
  const std::shared_ptr<pending_casts>& casts() const noexcept { return casts_; }

 private:
  std::shared_ptr<unobserved_errors> errors_ = std::make_shared<unobserved_errors>();
  std::shared_ptr<pending_casts> casts_ = std::make_shared<pending_casts>();
};

/// A local store; on `external` when given (which must outlive the store), else on an actor
/// system of its own.
std::shared_ptr<store_impl> make_local_store(std::string type, const options& opts,
                                             caf::actor_system* external);

}  // namespace kvactor::detail
