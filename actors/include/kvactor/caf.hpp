// Embedding kvactor in a CAF 0.17 application.
//
// A program that already runs a caf::actor_system can create a store on it (the store's
// shard and client actors then run on that system's scheduler) and talk to the store from
// its own actors by message, without futures:
//
//   caf::actor_system_config cfg;
//   kvactor::add_to_config(cfg);              // error rendering for kvactor errors
//   caf::actor_system sys{cfg};
//   auto kv = kvactor::create(sys, "local");
//   caf::actor store = kvactor::store_actor(kv);
//   self->request(store, caf::infinite, kvactor::push_atom::value, kvactor::key{3},
//                 std::vector<kvactor::tensor>{grad}, 0)
//       .then([](kvactor::ok_atom) { ... }, [](caf::error& e) { ... });
//
// Messages the store actor answers (all reply ok_atom, or a caf::error whose category is
// kvactor::error_category and whose code is a kvactor::errc; kvactor::to_status(e) gives the
// status with its message):
//   (init_atom, key, tensor)
//   (push_atom, key, std::vector<tensor> values, int priority)
//   (pull_atom, key, std::vector<tensor> outs, int priority)
//   (pushpull_atom, key, std::vector<tensor> values, std::vector<tensor> outs, int priority)
//   (barrier_atom)
// The same ordering, priority, lease and validation rules as the facade apply; requests from
// one actor count as one client. Tensors travel by handle (no copy), so these messages are
// for actors in the same process; they cannot cross a CAF network connection.
//
// The actor system must outlive the store. Destroying the store waits for its operations
// and stops its actors; it does not stop the system.
// Thread-safety: as kvstore.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <string_view>
#include <vector>

#include "kvactor/kvstore.hpp"

namespace kvactor {

using init_atom = caf::atom_constant<caf::atom("kv_init")>;
using push_atom = caf::atom_constant<caf::atom("kv_push")>;
using pull_atom = caf::atom_constant<caf::atom("kv_pull")>;
using pushpull_atom = caf::atom_constant<caf::atom("kv_pushpul")>;
using barrier_atom = caf::atom_constant<caf::atom("kv_barrier")>;
using ok_atom = caf::atom_constant<caf::atom("kv_ok")>;

/// The category of caf::error values that carry a kvactor::errc.
constexpr caf::atom_value error_category = caf::atom("kvactor");

/// Registers the renderer for kvactor errors, so actor_system::render shows their text.
void add_to_config(caf::actor_system_config& cfg);

/// A store whose actors run on sys.
kvstore create(caf::actor_system& sys, std::string_view type = "local", const options& opts = {});

/// The actor that answers the messages above. A user-registered store type
/// (kvactor/custom_store.hpp) has none: kvactor::error (unsupported).
caf::actor store_actor(const kvstore& kv);

caf::error to_caf_error(const status& s);
/// The status inside a caf::error (kvactor's category), or errc::internal describing a CAF
/// error from elsewhere (e.g. a request timeout).
status to_status(const caf::error& e);

}  // namespace kvactor

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::tensor)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kvactor::tensor>)
