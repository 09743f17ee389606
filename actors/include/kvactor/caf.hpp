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
//   kvactor::store_actor_handle store = kvactor::store_actor(kv);
//   self->request(store, caf::infinite, kvactor::push_atom::value, kvactor::key{3},
//                 std::vector<kvactor::tensor>{grad}, 0)
//       .then([](kvactor::ok_atom) { ... }, [](caf::error& e) { ... });
//
// The messages the store actor answers are its type, store_actor_handle (below): a request
// that is not one of them, or that expects another reply, does not compile. Every one replies
// ok_atom, or a caf::error whose category is kvactor::error_category and whose code is a
// kvactor::errc (kvactor::to_status(e) gives the status with its message).
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
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

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

/// The store actor's messages, one alias each, as kvstore's calls of the same name (`int` is
/// the priority).
using init_message = caf::replies_to<init_atom, key, tensor>::with<ok_atom>;
using push_message = caf::replies_to<push_atom, key, std::vector<tensor>, int>::with<ok_atom>;
using pull_message = caf::replies_to<pull_atom, key, std::vector<tensor>, int>::with<ok_atom>;
/// Values, then outputs (none: the result is written back into the values).
using pushpull_message = caf::replies_to<pushpull_atom, key, std::vector<tensor>,
                                         std::vector<tensor>, int>::with<ok_atom>;
using barrier_message = caf::replies_to<barrier_atom>::with<ok_atom>;
/// The store actor's interface: the contract of the embedding API, checked by the compiler.
using store_actor_handle =
    caf::typed_actor<init_message, push_message, pull_message, pushpull_message, barrier_message>;

/// The category of caf::error values that carry a kvactor::errc.
constexpr caf::atom_value error_category = caf::atom("kvactor");

/// Registers the renderer for kvactor errors, so actor_system::render shows their text.
void add_to_config(caf::actor_system_config& cfg);

/// A store whose actors run on sys.
kvstore create(caf::actor_system& sys, std::string_view type = "local", const options& opts = {});

/// The actor that answers the messages above. A user-registered store type
/// (kvactor/custom_store.hpp) has none: kvactor::error (unsupported).
store_actor_handle store_actor(const kvstore& kv);

caf::error to_caf_error(const status& s);
/// The status inside a caf::error (kvactor's category), or errc::internal describing a CAF
/// error from elsewhere (e.g. a request timeout).
status to_status(const caf::error& e);

}  // namespace kvactor

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::tensor)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kvactor::tensor>)
