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

/// A shard: its actor, and the gate to its core (shard_gate.hpp) with the actor's address.
struct shard_link;
struct shard_handle {
  caf::actor actor;
  std::shared_ptr<shard_link> link;
};

/// Spawns a shard actor on sys; big steps go to pool (of `width` threads), which must outlive
/// the actor and be stopped before the last handle goes; multi-device merges go through
/// `reduction` when it is not null.
shard_handle spawn_shard(caf::actor_system& sys, thread_pool* pool, std::size_t width,
                         std::size_t threshold_bytes, reduction_engine* reduction = nullptr);
/// Hands o (its leases taken) to its shard: with `here`, on this thread when the shard is idle
/// and may run o off its actor (shard_gate.hpp; the caller holds no lock a continuation of the
/// call could want), else as a message to the actor.
void deliver(const shard_handle& s, op_ptr o, bool here);
/// A store-wide action, as a message behind everything sent to the shard before it.
void deliver_fence(const shard_handle& s, const shard_fence& f);

class store_impl;
/// Spawns the store's client actor (the embedding interface); it holds the store weakly. The
/// handle is untyped for the stores to keep; its actor is a store_actor_handle (checked there).
caf::actor spawn_client(caf::actor_system& sys, std::weak_ptr<store_impl> store);

}  // namespace kvactor::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::op_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::shard_fence)
