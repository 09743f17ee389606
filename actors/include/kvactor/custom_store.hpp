// Store types a program registers (MXNet's KVStoreBase.register): after
//
//   kvactor::register_store("teststore", [](const kvactor::options&) {
//     return std::make_unique<my_store>();
//   });
//
// kvactor::create("teststore") returns a kvstore whose calls go to a new my_store, through the
// same facade as the built-in types: the same futures, wait_all() and outstanding(); type()
// is the registered name. A store derives from custom_store and overrides what it supports;
// every operation it does not override completes with errc::unsupported (set_updater throws
// it), as MXNet's KVStoreBase raises NotImplementedError.
//
// What the facade adds: set_optimizer() is refused with unsupported, without calling the
// store, unless is_capable("optimizer") is true; is_capable() of a capability kvactor does
// not know throws invalid_argument before the store is asked; an exception thrown by a
// store's operation completes its future with that error (kvactor::error) or errc::internal
// (anything else); destroying the kvstore waits for the futures the store returned, then
// calls wait_all() and destroys the store. The facade does not validate keys or values, and
// does not convert outputs of another element type: that is the store's own business.
//
// Thread-safety: the facade calls a store from every thread that uses its kvstore,
// concurrently, so a store must be safe for that (and keep its own ordering rules).
// register_store() may be called from any thread, concurrently with create().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "kvactor/kvstore.hpp"

namespace kvactor {

class custom_store {
 public:
  custom_store() = default;
  custom_store(const custom_store&) = delete;
  custom_store& operator=(const custom_store&) = delete;
  virtual ~custom_store() = default;

  /// The kvstore calls of the same names, with their arguments as the caller gave them.
  virtual future<void> init(const key_list& keys, const value_list& values);
  virtual future<void> push(const key_list& keys, const value_list& values, int priority);
  virtual future<void> pull(const key_list& keys, const value_list& outs, int priority);
  /// outs is empty when the caller asked for the result in the values.
  virtual future<void> pushpull(const key_list& keys, const value_list& values,
                                const value_list& outs, int priority);
  virtual future<void> broadcast(const key_list& keys, const value_list& values,
                                 const value_list& outs, int priority);
  /// kvstore::init and push with row-sparse values.
  virtual future<void> init_row_sparse(const key_list& keys, const sparse_list& values);
  virtual future<void> push_row_sparse(const key_list& keys, const sparse_list& values,
                                       int priority);
  virtual future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                                       const value_list& row_ids, int priority);
  /// Called only when is_capable("optimizer") is true.
  virtual future<void> set_optimizer(const optimizer_config& cfg);
  /// Throws kvactor::error (unsupported) unless overridden.
  virtual void set_updater(std::shared_ptr<const updater> u);
  virtual future<void> set_gradient_compression(const std::string& type, double threshold);
  virtual future<void> save_optimizer_states(const std::string& file, bool dump_optimizer);
  virtual future<void> load_optimizer_states(const std::string& file);
  virtual future<void> send_command_to_servers(int head, const std::string& body);
  /// Completes at once unless overridden (one worker).
  virtual future<void> barrier();
  /// capability is lower-case and one kvactor knows ("optimizer"). False unless overridden.
  virtual bool is_capable(std::string_view capability) const;
  virtual int rank() const { return 0; }
  virtual int num_workers() const { return 1; }
  /// Blocks until work the store runs on its own (outside the futures it returned) is done.
  virtual void wait_all() {}

 protected:
  /// A future completed with errc::unsupported naming `operation`.
  static future<void> unsupported(std::string_view operation);
};

/// Makes a store of a registered type; opts are those given to create().
using store_factory = std::function<std::unique_ptr<custom_store>(const options& opts)>;

/// Registers store type `name` for create(). Throws kvactor::error (invalid_argument) when
/// name is empty, is a built-in type or alias ("local", "dist_sync", ...), or was registered
/// before, and when factory is empty. Names are matched exactly, as create() matches them.
void register_store(std::string name, store_factory factory);

}  // namespace kvactor
