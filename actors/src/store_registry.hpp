// The store types create() knows: the built-in ones and those a program registered
// (kvactor/custom_store.hpp), and the store_impl that puts a registered store behind the
// kvstore facade.
// Thread-safety: every function may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvactor/custom_store.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {

/// "local", "dist_sync", ... and their aliases (kvstore.cpp).
bool is_builtin_store_type(std::string_view type);

/// The factory registered for type, or an empty one.
store_factory find_registered_store(std::string_view type);
/// The registered names, sorted (for create()'s message about an unknown type).
std::vector<std::string> registered_store_types();

/// A store of registered type `type`, made by factory(opts).
std::shared_ptr<store_impl> make_registered_store(std::string type, const store_factory& factory,
                                                  const options& opts);

}  // namespace kvactor::detail
