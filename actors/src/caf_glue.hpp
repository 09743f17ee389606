// CAF-side declarations private to actors/: atoms and the message types of the internal
// actors. Only .cpp files of actors/ include this.
#pragma once

#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include "kvactor/caf.hpp"
#include "kvactor/detail/thread_pool.hpp"
#include "op.hpp"
#include "shard_fence.hpp"

namespace kvactor::detail {

using process_atom = caf::atom_constant<caf::atom("kv_process")>;
using step_done_atom = caf::atom_constant<caf::atom("kv_stepdn")>;
using reply_atom = caf::atom_constant<caf::atom("kv_reply")>;
/// With a shard_fence (shard_fence.hpp): a store-wide action a shard runs between the ops
/// before it and the ops after it.
using fence_atom = caf::atom_constant<caf::atom("kv_fence")>;

class reduction_engine;

/// Spawns a shard actor on sys; big steps go to pool (of `width` threads), which must outlive
/// the actor; multi-device merges go through `reduction` when it is not null.
caf::actor spawn_shard(caf::actor_system& sys, thread_pool* pool, std::size_t width,
                       std::size_t threshold_bytes, reduction_engine* reduction = nullptr);

class store_impl;
/// Spawns the store's client actor (the embedding interface); it holds the store weakly. The
/// handle is untyped for the stores to keep; its actor is a store_actor_handle (checked there).
caf::actor spawn_client(caf::actor_system& sys, std::weak_ptr<store_impl> store);

}  // namespace kvactor::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::op_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::shard_fence)
